// name: compromised_sites
// purpose: sites with at least $min_frauds confirmed frauds, the most recent fraud first
// params: min_frauds: integer = 2, limit: integer = 25
// returns: site: string, category: string|null, fraud_count: integer, last_fraud_ms: integer|null, blocked: boolean
MATCH (s:Site)
WHERE s.fraud_count >= $min_frauds
RETURN s.id AS site, s.category AS category, s.fraud_count AS fraud_count,
       s.last_fraud_ms AS last_fraud_ms, coalesce(s.blocked, false) AS blocked
ORDER BY last_fraud_ms DESC, site
LIMIT $limit
