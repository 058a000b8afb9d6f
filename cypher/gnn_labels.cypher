// name: gnn_labels
// purpose: the GNN's labels: cards, users and devices with confirmed fraud (set by the label feedback, never by a model), the event time of their latest confirmed fraud, and the time their fraud became known: the earliest report time among the labels that marked them (the event time on graphs labelled before report times were kept)
// params: none
// returns: label: string, id: string, fraud_ms: integer, reported_ms: integer
MATCH (n)
WHERE n.fraud_confirmed_ms IS NOT NULL AND (n:Card OR n:User OR n:Device)
RETURN head([l IN labels(n) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, n.id AS id, n.fraud_confirmed_ms AS fraud_ms, coalesce(n.fraud_reported_ms, n.fraud_confirmed_ms) AS reported_ms
