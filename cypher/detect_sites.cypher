// name: detect_sites
// purpose: per-batch compromised-site check; returns only the sites with at least $min_frauds confirmed frauds or a GNN risk, with the newest fraud's event time
// params: ids: list<string>, min_frauds: integer, min_risk: float = 0.5
// returns: id: string, fraud_count: integer, last_fraud_ms: integer|null, risk_score: float|null
UNWIND $ids AS id
MATCH (s:Site {id: id})
WITH s, coalesce(s.fraud_count, 0) AS fraud_count
WHERE fraud_count >= $min_frauds OR s.risk_score >= $min_risk
RETURN s.id AS id, fraud_count, s.last_fraud_ms AS last_fraud_ms, s.risk_score AS risk_score
