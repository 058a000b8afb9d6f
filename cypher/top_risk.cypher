// name: top_risk
// purpose: the suspects: entities without confirmed fraud with the highest GNN risk score (any label), with blocklist status (confirmed fraud scores 1 and is known already)
// params: limit: integer = 25
// returns: label: string, id: string, risk_score: float, risk_model: string|null, blocked: boolean
MATCH (n)
WHERE n.risk_score IS NOT NULL AND n.fraud_confirmed_ms IS NULL
RETURN head([l IN labels(n) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, n.id AS id, n.risk_score AS risk_score, n.risk_model AS risk_model,
       coalesce(n.blocked, false) AS blocked
ORDER BY risk_score DESC, label, id
LIMIT $limit
