// name: near_known_fraud
// purpose: entities within 2 hops (through cards, users, devices and IPs) of a confirmed-fraud entity, themselves neither confirmed nor blocklisted: where to look next
// params: limit: integer = 50
// returns: label: string, id: string, near: string, hops: integer
MATCH (f)
WHERE f.fraud_confirmed_ms IS NOT NULL
MATCH p = (f)-[:HOLDS|USED_ON|USES|FROM_IP*1..2]-(m)
WHERE m.fraud_confirmed_ms IS NULL AND coalesce(m.blocked, false) = false
WITH m, min(length(p)) AS hops, min(head([l IN labels(f) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) + ' ' + f.id) AS near
RETURN head([l IN labels(m) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, m.id AS id, near, hops
ORDER BY hops, label, id
LIMIT $limit
