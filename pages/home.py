"""Home page: what GCA Explorer shows."""

import streamlit as st

st.title("GCA Explorer")

st.markdown(
    """
Contrastive learning is secretly an optimal-transport problem. A batch of paired embeddings
defines a cost $C_{ij} = 1 - \\langle z'_i, z''_j \\rangle$ and a Gibbs kernel
$K = \\exp(-C/\\varepsilon)$, and the InfoNCE loss is the KL divergence from the identity
pairing to a single row normalisation of $K$, which is the first half-step of the Sinkhorn
algorithm. Running Sinkhorn further (GCA-INCE) never increases that divergence on the same
batch, and relaxing the marginal constraints gives unbalanced optimal transport (GCA-UOT),
which can move mass away from corrupted positive pairs. This app will let you watch each
of these steps on real batches.
"""
)

st.latex(
    r"\mathcal{L}_{\mathrm{INCE}} = \frac{1}{N}\,\mathrm{KL}\!\left(I \,\middle\|\, P^{(1)}\right),"
    r"\qquad P^{(1)}_{ij} = \frac{K_{ij}}{\sum_{k} K_{ik}},"
    r"\qquad K_{ij} = e^{-C_{ij}/\varepsilon}"
)

st.info(
    "The interactive pages (plan lab, ε and iteration sweeps, training, geometry) are being "
    "built; for now this page is the whole app."
)
