"""Graph neural network: takes data, returns results.

* :mod:`gnn.dataset`: the graph exported from Neo4j (a driver passed in) as arrays,
  and the split by report time;
* :mod:`gnn.model`: the GNN and the baseline, the training loop, the saved artifact;
* :mod:`gnn.training`: both models fitted and measured on one split;
* :mod:`gnn.evaluation`: quality (AP, AUC) on the validation entities;
* :mod:`gnn.scoring`: scores, the new suspects, the score write (a driver passed in);
* :mod:`gnn.registry`: version names, artifact folders, the registry row, the
  promotion rule (its table: :mod:`storage.models`).

The only package that imports torch / torch_geometric; the daemon never imports it.
It never imports the composition root: the connections, the registry writes, the
blocklist and the alerts are wired in ``fraudgraph.gnn_service``, which the CLI
imports inside the commands.
"""

import warnings

# torch_geometric touches torch.jit.script at import; torch 2.15 warns about it on every run
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
