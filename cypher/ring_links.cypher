// name: ring_links
// purpose: the links the fraud-ring sweep connects users through, as of $known_ms: cards held by several users and (when $devices) devices used by several users, each with every user and the time that user was first seen on it (the sweep keeps a device's first users only: busier devices are kiosks or farms, found by the shared-device check)
// params: known_ms: integer, devices: boolean = false
// returns: via: string, through: string, users: list<list>
CALL () {
  MATCH (c:Card)<-[r:HOLDS]-(u:User)
  WHERE r.first_seen_ms <= $known_ms
  WITH c, collect([u.id, r.first_seen_ms]) AS users WHERE size(users) >= 2
  RETURN 'card' AS via, c.id AS through, users
  UNION ALL
  MATCH (d:Device)<-[r:USES]-(u:User)
  WHERE $devices AND r.first_seen_ms <= $known_ms
  WITH d, collect([u.id, r.first_seen_ms]) AS users WHERE size(users) >= 2
  RETURN 'device' AS via, d.id AS through, users
}
RETURN via, through, users
