// name: gnn_labels
// purpose: the GNN's training labels: cards, users and devices with confirmed fraud, and the event time of their latest confirmed fraud (set by the label feedback, never by a model)
// params: none
// returns: label: string, id: string, fraud_ms: integer
MATCH (n)
WHERE n.fraud_confirmed_ms IS NOT NULL AND (n:Card OR n:User OR n:Device)
RETURN head([l IN labels(n) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, n.id AS id, n.fraud_confirmed_ms AS fraud_ms
