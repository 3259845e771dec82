//! The browser entry point: hydrates the server-rendered page. Nothing else
//! lives here. `hydrate_lazy` because the security page's view is a lazily
//! loaded WebAssembly chunk (see `app::ui::security::SecurityRoute`).

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(app::App);
}
