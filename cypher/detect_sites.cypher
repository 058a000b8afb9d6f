// name: detect_sites
// purpose: per-batch compromised-site check: confirmed frauds at each site and the newest one's event time, and GNN risk
// params: ids: list<string>
// returns: id: string, fraud_count: integer, last_fraud_ms: integer|null, risk_score: float|null
UNWIND $ids AS id
MATCH (s:Site {id: id})
RETURN s.id AS id, coalesce(s.fraud_count, 0) AS fraud_count, s.last_fraud_ms AS last_fraud_ms,
       s.risk_score AS risk_score
