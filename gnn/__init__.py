"""Graph neural network: dataset export, model, training, scoring.

The only package that imports torch / torch_geometric; the daemon never imports it.
Built in the GNN issue; empty until then.
"""
