"""The two consumer loops and what they are made of.

* :mod:`.daemon`: transactions → decisions, in named stages (``fraudgraph run``);
* :mod:`.projector`: transactions → the Neo4j graph (``fraudgraph project``);
* :mod:`.batch`: the skeleton both share: stage timing and :class:`.batch.BatchCommit`;
* :mod:`.health`: which service is failing now, retries with backoff, /healthz;
* :mod:`.graph_view`: the batch's graph facts as of each transaction's time;
* :mod:`.ring_sweep`: rings at boundaries of event time;
* :mod:`.feedback`: the daemon's worker thread, scheduling the label source
  (``ingest.label_source``), :mod:`.label_applier` and :mod:`.annotator`;
* :mod:`.rule_state`: rule-state checkpoints; :mod:`.loop`: signals, idleness.
"""
