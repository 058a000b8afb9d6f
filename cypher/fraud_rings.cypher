// name: fraud_rings
// purpose: the fraud rings the detector's sweep found (users linked through shared cards), largest first, with their members and how many are blocklisted
// params: min_size: integer = 3
// returns: ring_id: string, size: integer, members: list<string>, blocked_members: integer
MATCH (u:User)
WHERE u.ring_id IS NOT NULL
WITH u ORDER BY u.id
WITH u.ring_id AS ring_id, collect(u) AS members
WHERE size(members) >= $min_size
RETURN ring_id, size(members) AS size, [m IN members | m.id] AS members,
       size([m IN members WHERE m.blocked]) AS blocked_members
ORDER BY size DESC, ring_id
