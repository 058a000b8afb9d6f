// name: ring_save
// purpose: record the sweep's rings on their member users (ring_id, ring_size) and clear the marks of users no longer in a ring
// params: members: list<map{id: string, ring_id: string, ring_size: integer}>
// returns: marked: integer, cleared: integer
CALL () {
  MATCH (u:User) WHERE u.ring_id IS NOT NULL
  WITH collect(u) AS marked
  UNWIND marked AS u
  WITH u WHERE NOT u.id IN [m IN $members | m.id]
  REMOVE u.ring_id, u.ring_size
  RETURN count(u) AS cleared
}
CALL () {
  UNWIND $members AS m
  MATCH (u:User {id: m.id})
  SET u.ring_id = m.ring_id, u.ring_size = m.ring_size
  RETURN count(u) AS marked
}
RETURN marked, cleared
