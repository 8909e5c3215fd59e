"""gca_viz: contrastive learning as optimal transport.

The library behind GCA Explorer. It implements the Generalized Contrastive Alignment (GCA)
view of contrastive learning: a batch of embeddings defines a cost matrix
``C = 1 - cos(z', z'')`` and a Gibbs kernel ``K = exp(-C / ε)``; InfoNCE is one row
normalisation of ``K`` (one half-step of Sinkhorn), running Sinkhorn to convergence gives
GCA-INCE, and relaxing the marginals gives the unbalanced variant GCA-UOT.

Submodules are imported explicitly, for example ``from gca_viz.ot import sinkhorn``.
Importing this package is cheap and never imports streamlit.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
