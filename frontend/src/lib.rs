//! The browser entry point: hydrates the server-rendered page. Nothing else
//! lives here. `hydrate_lazy` because the security page's view is a lazily
//! loaded WebAssembly chunk (see `app::ui::security::SecurityRoute`).

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

#[wasm_bindgen]
pub fn hydrate() {
    // A panic reaches the browser's console with its message and place (the
    // console adds the stack of the call). `console_error_panic_hook` did the
    // same with a JavaScript stack appended, for 1 KB more on every page.
    std::panic::set_hook(Box::new(|info| console_error(&info.to_string())));
    leptos::mount::hydrate_lazy(app::App);
}
