//! The settings of this isolate: read from the Worker's vars and secrets on first use, then
//! kept. Vars and secrets only change with a new deployment, which starts new isolates.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::Env;

use crate::domain::config::{self, Config};
use crate::domain::error::{ConfigError, Error};
use crate::edge::auth::Token;

thread_local! {
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
    static TOKEN: OnceCell<Result<Option<Rc<Token>>, ConfigError>> = const { OnceCell::new() };
}

/// A var or secret of this deployment, as text.
fn lookup(env: &Env) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        let value = env.secret(name).or_else(|_| env.var(name)).ok()?;
        Some(value.to_string())
    }
}

/// The bearer token callers must send, if `API_TOKEN` is set: read apart from the other
/// settings, so that authentication comes before any of them is judged.
pub fn token(env: &Env) -> Result<Option<Rc<Token>>, Error> {
    let token = TOKEN.with(|cell| {
        cell.get_or_init(|| {
            let token = config::api_token(lookup(env))?;
            Ok(token.map(|token| Rc::new(Token::new(&token))))
        })
        .clone()
    });
    Ok(token?)
}

/// The settings, or the error that names the variable to fix (every request fails with it).
pub fn config(env: &Env) -> Result<Rc<Config>, Error> {
    let config = CONFIG.with(|cell| {
        cell.get_or_init(|| Config::from_lookup(lookup(env)).map(Rc::new))
            .clone()
    });
    Ok(config?)
}
