//! Where the heap keeps what lives as long as the isolate. Wasm memory only grows, so its peak
//! is what a request can leave behind as much as what it holds: a session-sized buffer is taken
//! from the top of the heap, and a small allocation made while it is alive and kept after it
//! (wasm-bindgen's tables of JavaScript values grow the first time many are alive, thread-locals
//! are made on first use) is placed above it when no free block below fits. Once the buffer is
//! freed, the block it leaves is that much short of the next session-sized one, which then
//! grows memory by a whole session.
//!
//! Measured in strong mode at the largest session (`bench/memory.mjs`): a `PUT` and a `PATCH`
//! held 6.75 MiB with the objects keeping their own order ([`crate::edge::gate`]) and no room
//! kept low, 5.69 with [`LOW`] bytes kept (4 and 8 KiB were too few; 64 KiB is itself one page
//! more), the same as before either change. KV's figures do not move.

/// The bytes of the free block kept at the bottom of the heap for small allocations.
const LOW: usize = 32 * 1024;

/// Leaves a free block of [`LOW`] bytes at the bottom of the heap, held apart from the top by a
/// small allocation made just above it and never freed. The allocator serves a small request
/// from the smallest free block that fits it before it takes from the top, so what the first
/// requests keep lands here, below any session. Call it once, first, when the module starts.
pub fn keep_room_low() {
    // `black_box`: an allocation nothing reads could otherwise be optimised away.
    let room = std::hint::black_box(Vec::<u8>::with_capacity(LOW));
    Box::leak(std::hint::black_box(Box::new(0u64)));
    drop(room);
}
