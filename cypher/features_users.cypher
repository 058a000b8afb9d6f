// name: features_users
// purpose: graph features of a batch of users: cards, devices and IPs in use
// params: ids: list<string>
// returns: id: string, cards: integer, devices: integer, ips: integer
UNWIND $ids AS id
MATCH (u:User {id: id})
RETURN id,
       COUNT { (u)-[:HOLDS]->(:Card) } AS cards,
       COUNT { (u)-[:USES]->(:Device) } AS devices,
       COUNT { (u)-[:FROM_IP]->(:IP) } AS ips
