// name: neighbourhood
// purpose: the entities within 2 hops of one entity (through cards, users, devices and IPs; sites are left out: every card meets popular sites), with GNN risk, blocklist status and confirmed fraud
// params: label: string, id: string, limit: integer = 200
// returns: label: string, id: string, hops: integer, risk_score: float|null, blocked: boolean, confirmed_fraud: boolean
CALL () {
  MATCH (n:User {id: $id}) WHERE $label = 'User' RETURN n
  UNION MATCH (n:Card {id: $id}) WHERE $label = 'Card' RETURN n
  UNION MATCH (n:Device {id: $id}) WHERE $label = 'Device' RETURN n
  UNION MATCH (n:IP {id: $id}) WHERE $label = 'IP' RETURN n
  UNION MATCH (n:Site {id: $id}) WHERE $label = 'Site' RETURN n
}
MATCH p = (n)-[:HOLDS|USED_ON|USES|FROM_IP*1..2]-(m)
WHERE m <> n
WITH m, min(length(p)) AS hops
RETURN head([l IN labels(m) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, m.id AS id, hops, m.risk_score AS risk_score,
       coalesce(m.blocked, false) AS blocked, m.fraud_confirmed_ms IS NOT NULL AS confirmed_fraud
ORDER BY hops, label, id
LIMIT $limit
