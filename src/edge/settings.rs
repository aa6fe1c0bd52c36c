//! The settings of this isolate: read from the Worker's vars and secrets on first use, then
//! kept. Vars and secrets only change with a new deployment, which starts new isolates.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::Env;

use crate::domain::config::Config;
use crate::domain::error::{ConfigError, Error};

thread_local! {
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
}

/// The settings, or the error that names the variable to fix (every request fails with it).
pub fn config(env: &Env) -> Result<Rc<Config>, Error> {
    let config = CONFIG.with(|cell| {
        cell.get_or_init(|| {
            Config::from_lookup(|name| {
                let value = env.secret(name).or_else(|_| env.var(name)).ok()?;
                Some(value.to_string())
            })
            .map(Rc::new)
        })
        .clone()
    });
    Ok(config?)
}
