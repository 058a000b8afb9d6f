// name: shared_devices
// purpose: devices used by more than $min_cards cards (the classic "devices shared by more than 3 cards"), with how many users, blocklist status and GNN risk
// params: min_cards: integer = 3, limit: integer = 25
// returns: device: string, cards: integer, users: integer, blocked: boolean, risk_score: float|null
MATCH (d:Device)<-[:USED_ON]-(:Card)
WITH d, count(*) AS cards
WHERE cards > $min_cards
RETURN d.id AS device, cards, COUNT { (d)<-[:USES]-(:User) } AS users,
       coalesce(d.blocked, false) AS blocked, d.risk_score AS risk_score
ORDER BY cards DESC, device
LIMIT $limit
