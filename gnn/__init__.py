"""Graph neural network: dataset export, model, training, registry, scoring.

The only package that imports torch / torch_geometric; the daemon never imports it
(``fraudgraph.gnn_cli`` imports :mod:`gnn.pipeline` inside the commands).
"""

import warnings

# torch_geometric touches torch.jit.script at import; torch 2.15 warns about it on every run
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
