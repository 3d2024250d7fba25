import PicoModel
@testable import PicoModel
@testable import PicoSim
import Testing

@Test func scratchHold() {
    var world = WorldTests.world(pods: 4, seed: 23)
    for index in 0..<4 { world.start(index); world.run(until: world.now + .seconds(2)) }
    world.run(until: .seconds(20))
    let links = [1, 2, 3].flatMap { [SimNetwork.Link(from: 0, to: $0), SimNetwork.Link(from: $0, to: 0)] }
    world.hold(links)
    world.run(until: .milliseconds(39_990))
    let m = world.pods[0].node!.membership
    for (uid, s) in m.suspicions.sorted(by: { $0.key < $1.key }) { print("susp", uid, "accuser", s.accuser, "conf", s.confirmers, "deadline", s.deadline, "started", s.startedAt) }
    print("me", m.me.uid)
    world.release(links)
    let before = world.events.count
    world.run(until: .milliseconds(40_200))
    for (time, pod, event) in world.events[before...] where pod == 0 {
        if case .membership(let e) = event { print(time, e) }
    }
}
