// name: detect_devices
// purpose: per-batch shared-device check: how many cards and users each device is linked to, its GNN risk and fraud mark
// params: ids: list<string>
// returns: id: string, cards: integer, users: integer, risk_score: float|null, fraud_confirmed_ms: integer|null
UNWIND $ids AS id
MATCH (d:Device {id: id})
RETURN d.id AS id, COUNT { (d)<-[:USED_ON]-(:Card) } AS cards, COUNT { (d)<-[:USES]-(:User) } AS users,
       d.risk_score AS risk_score, d.fraud_confirmed_ms AS fraud_confirmed_ms
