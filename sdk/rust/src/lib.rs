//! Write aerie plugins in Rust.
//!
//! A plugin is a WebAssembly component that offers a few *actions*. With this
//! crate an action is a plain function from a serde input type to a serde output
//! type; the crate derives the JSON Schemas the host shows operators, turns bad
//! input into `invalid-input` errors, and exports the component's interface.
//!
//! ```ignore
//! use aerie_sdk::{Actions, Error, Plugin, http};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! struct Greeter;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output { greeting: String }
//!
//! fn greet(input: Input) -> Result<Output, Error> {
//!     let base = aerie_sdk::setting("base_url").unwrap_or_default();
//!     let reply = http::get(&format!("{base}/hello/{}", input.name)).send()?;
//!     Ok(Output { greeting: reply.error_for_status()?.text()? })
//! }
//!
//! impl Plugin for Greeter {
//!     fn actions() -> Actions {
//!         Actions::new().action("greet", "Say hello", greet)
//!     }
//! }
//!
//! aerie_sdk::export!(Greeter);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` and put the `.wasm`
//! next to a `plugin.toml`. The host injects credentials into requests; a plugin
//! never sees them, so there is nothing here to read a secret with.

mod actions;
pub mod classify;
mod error;
pub mod http;
pub mod log;

pub use actions::{Actions, Plugin};
pub use error::{Error, ErrorCode};

/// Reads a non-secret setting the operator configured (or the manifest's default).
pub fn setting(key: &str) -> Option<String> {
    bindings::wasi::config::store::get(key).ok().flatten()
}

/// Every setting, as `(key, value)` pairs.
pub fn settings() -> Vec<(String, String)> {
    bindings::wasi::config::store::get_all().unwrap_or_default()
}

// The one place this crate runs `generate!`; everything generated stays private
// except what the export macro needs.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "aerie:plugin/integration",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_component",
        default_bindings_module: "aerie_sdk::bindings",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::actions::{describe, invoke};
    pub use crate::bindings::exports::aerie::plugin::plugin::Guest;
    pub use crate::bindings::exports::aerie::plugin::plugin::{PluginError, PluginInfo};
}

/// Exports `$plugin` (a unit struct implementing [`Plugin`]) as the component's
/// `aerie:plugin/plugin` interface. Use it once, at the crate root.
#[macro_export]
macro_rules! export {
    ($plugin:ident) => {
        // The plugin is a unit struct that is otherwise only named as a type.
        const _: $plugin = $plugin;

        // Only a wasm build exports anything: a native build (the plugin's own
        // unit tests) has no host to import from.
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __AerieComponent;

            impl $crate::__private::Guest for __AerieComponent {
                fn describe() -> $crate::__private::PluginInfo {
                    $crate::__private::describe::<$plugin>(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                    )
                }

                fn invoke(
                    action: String,
                    input: String,
                ) -> Result<String, $crate::__private::PluginError> {
                    $crate::__private::invoke::<$plugin>(&action, &input)
                }
            }

    $crate::bindings::__export_component!(__AerieComponent with_types_in $crate::bindings);
        };
    };
}
