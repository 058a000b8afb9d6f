// name: mark_blocked
// purpose: make blocklist status visible on graph nodes (label :Blocked for the Browser style; blocked, blocked_reason, blocked_source); nodes the projection has not written yet are left alone (MATCH: no lock races with the projection's MERGE)
// params: cards: list<map{id: string, reason: string, source: string}>, users: list<map{id, reason, source}>, devices: list<map{id, reason, source}>, ips: list<map{id, reason, source}>, sites: list<map{id, reason, source}>
// returns: nothing
CALL () { UNWIND $cards AS r MATCH (n:Card {id: r.id}) SET n:Blocked, n.blocked = true, n.blocked_reason = r.reason, n.blocked_source = r.source }
CALL () { UNWIND $users AS r MATCH (n:User {id: r.id}) SET n:Blocked, n.blocked = true, n.blocked_reason = r.reason, n.blocked_source = r.source }
CALL () { UNWIND $devices AS r MATCH (n:Device {id: r.id}) SET n:Blocked, n.blocked = true, n.blocked_reason = r.reason, n.blocked_source = r.source }
CALL () { UNWIND $ips AS r MATCH (n:IP {id: r.id}) SET n:Blocked, n.blocked = true, n.blocked_reason = r.reason, n.blocked_source = r.source }
CALL () { UNWIND $sites AS r MATCH (n:Site {id: r.id}) SET n:Blocked, n.blocked = true, n.blocked_reason = r.reason, n.blocked_source = r.source }
