import DirectorFuzzing

// libFuzzer's entry points: its own main calls them.

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    FuzzSeeds.writeIfAsked(ForwarderFuzzing.seeds())
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ForwarderFuzzing.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}
