// name: users_sharing
// purpose: pairs of users who share a device or an IP address (one row per pair and shared entity)
// params: limit: integer = 50
// returns: user_a: string, user_b: string, via: string, shared: string
MATCH (a:User)-[:USES|FROM_IP]->(x)<-[:USES|FROM_IP]-(b:User)
WHERE a.id < b.id
RETURN a.id AS user_a, b.id AS user_b, CASE WHEN x:Device THEN 'device' ELSE 'ip' END AS via,
       x.id AS shared
ORDER BY user_a, user_b, via, shared
LIMIT $limit
