// name: detect_ips
// purpose: per-batch shared-IP members as of $known_ms (the newest time the batch may know): for each IP address, each user seen on it with the time first seen there; returns only the addresses with at least $min_users users by $known_ms. The caller counts per transaction, as of that transaction's own time.
// params: ids: list<string>, known_ms: integer, min_users: integer
// returns: id: string, users: list<list>
UNWIND $ids AS id
MATCH (i:IP {id: id})
WITH i, [(i)<-[r:FROM_IP]-(u:User) WHERE r.first_seen_ms <= $known_ms | [u.id, r.first_seen_ms]] AS users
WHERE size(users) >= $min_users
RETURN i.id AS id, users
