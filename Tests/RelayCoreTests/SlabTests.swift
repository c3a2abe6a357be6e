import Testing

@testable import RelayCore

@Suite struct SlabTests {
    @Test func insertsUpToCapacityThenRefuses() {
        let slab = Slab<Int>(capacity: 3)
        let handles = (0..<3).compactMap { slab.insert($0 * 10) }
        #expect(handles.count == 3)
        #expect(slab.insert(99) == nil)
        #expect(slab.count == 3)
        for (index, handle) in handles.enumerated() {
            #expect(slab.pointer(handle)?.pointee == index * 10)
        }
    }

    @Test func aHandleKeptPastItsElementIsStaleEvenWhenTheSlotIsReused() {
        let slab = Slab<String>(capacity: 1)
        let first = slab.insert("first")!
        #expect(slab.remove(first) == "first")
        #expect(slab.pointer(first) == nil)
        #expect(slab.remove(first) == nil)
        let second = slab.insert("second")!
        #expect(second.index == first.index)
        #expect(second != first)
        #expect(!slab.contains(first))
        #expect(slab.pointer(second)?.pointee == "second")
    }

    @Test func elementsAreChangedInPlaceAndHandlesSurviveTheEpollPacking() {
        let slab = Slab<[Int]>(capacity: 4)
        let handle = slab.insert([1])!
        slab.pointer(handle)!.pointee.append(2)
        #expect(slab.pointer(handle)?.pointee == [1, 2])
        let packed = handle.packed | (1 << 63)  // the loop's side bit
        #expect(Slab<[Int]>.Handle(packed: packed & ~(1 << 63)) == handle)
        #expect(slab.handle(of: slab.pointer(handle)!) == handle)
    }

    @Test func handlesListsTheOccupiedSlots() {
        let slab = Slab<Int>(capacity: 8)
        let handles = (0..<5).map { slab.insert($0)! }
        slab.remove(handles[1])
        slab.remove(handles[3])
        #expect(Set(slab.handles) == Set([handles[0], handles[2], handles[4]]))
    }
}
