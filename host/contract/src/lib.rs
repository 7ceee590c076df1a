//! The small vocabulary that crosses aerie's rooms: what failed ([`ErrorCode`]),
//! what a plugin asked of the network ([`RequestRecord`]) and said
//! ([`LogLine`]), and where in a source file a problem is ([`Location`]).
//!
//! The runtime produces these, the engine carries them, the store persists
//! them and the binary prints them; one type each, so a renamed field is a
//! compile error instead of an empty column. Nothing here does I/O; [`now`]
//! is the one clock every stored timestamp is read from.

mod clock;
mod code;
mod location;
mod names;
mod record;

pub use clock::{epoch_ms, now, rfc3339};
pub use code::{ErrorCode, UnknownCode};
pub use location::Location;
pub use names::check_webhook_name;
pub use record::{LogLine, RequestRecord};
