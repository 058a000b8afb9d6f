// name: ring_links
// purpose: the links the fraud-ring sweep connects users through: cards held by several users, and devices used by 2..$max_device_users users (busier devices are farms, found by the shared-device check)
// params: max_device_users: integer
// returns: via: string, through: string, users: list<string>
CALL () {
  MATCH (c:Card)<-[:HOLDS]-(u:User)
  WITH c, collect(u.id) AS users WHERE size(users) >= 2
  RETURN 'card' AS via, c.id AS through, users
  UNION ALL
  MATCH (d:Device)<-[:USES]-(u:User)
  WITH d, collect(u.id) AS users WHERE 2 <= size(users) <= $max_device_users
  RETURN 'device' AS via, d.id AS through, users
}
RETURN via, through, users
