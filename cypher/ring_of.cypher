// name: ring_of
// purpose: the fraud ring of one user: every member with the cards they hold and their blocklist status
// params: user_id: string
// returns: ring_id: string, member: string, cards: list<string>, blocked: boolean
MATCH (u:User {id: $user_id})
WHERE u.ring_id IS NOT NULL
MATCH (m:User)
WHERE m.ring_id = u.ring_id
OPTIONAL MATCH (m)-[:HOLDS]->(c:Card)
WITH u, m, c ORDER BY c.id
RETURN u.ring_id AS ring_id, m.id AS member, collect(c.id) AS cards,
       coalesce(m.blocked, false) AS blocked
ORDER BY member
