// name: project_entities
// purpose: MERGE the entity nodes a batch introduces (ids not yet in the projector's cache)
// params: users: list<string>, cards: list<string>, devices: list<string>, ips: list<string>, sites: list<map{id, category, country}>
// returns: nothing
CALL () { UNWIND $users AS id MERGE (:User {id: id}) }
CALL () { UNWIND $cards AS id MERGE (:Card {id: id}) }
CALL () { UNWIND $devices AS id MERGE (:Device {id: id}) }
CALL () { UNWIND $ips AS id MERGE (:IP {id: id}) }
CALL () {
  UNWIND $sites AS s
  MERGE (n:Site {id: s.id})
  ON CREATE SET n.category = s.category, n.country = s.country
}
