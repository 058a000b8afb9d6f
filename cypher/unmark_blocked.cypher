// name: unmark_blocked
// purpose: take blocklist status off graph nodes whose entry was revoked (the :Blocked label and the blocked, blocked_reason, blocked_source properties), so neither the Browser nor the detectors' proximity checks treat them as blocked any more; confirmed fraud stays
// params: cards: list<map{id: string}>, users: list<map{id}>, devices: list<map{id}>, ips: list<map{id}>, sites: list<map{id}>
// returns: unmarked: integer (nodes that carried the mark)
CALL () { UNWIND $cards AS r MATCH (n:Card:Blocked {id: r.id}) REMOVE n:Blocked, n.blocked, n.blocked_reason, n.blocked_source RETURN count(n) AS cards }
CALL () { UNWIND $users AS r MATCH (n:User:Blocked {id: r.id}) REMOVE n:Blocked, n.blocked, n.blocked_reason, n.blocked_source RETURN count(n) AS users }
CALL () { UNWIND $devices AS r MATCH (n:Device:Blocked {id: r.id}) REMOVE n:Blocked, n.blocked, n.blocked_reason, n.blocked_source RETURN count(n) AS devices }
CALL () { UNWIND $ips AS r MATCH (n:IP:Blocked {id: r.id}) REMOVE n:Blocked, n.blocked, n.blocked_reason, n.blocked_source RETURN count(n) AS ips }
CALL () { UNWIND $sites AS r MATCH (n:Site:Blocked {id: r.id}) REMOVE n:Blocked, n.blocked, n.blocked_reason, n.blocked_source RETURN count(n) AS sites }
RETURN cards + users + devices + ips + sites AS unmarked
