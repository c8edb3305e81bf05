//! Attribute arguments shared by the three macros: durations, restart types, shutdown policies,
//! backoff, and the child-spec defaults built from them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Meta, Token};

/// Every error of one item, reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// An error over all of `tokens` (not only their first token, as a bare span would be).
    pub fn at(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Takes in the errors of one part of an item; true if it had none.
    pub fn absorb(&mut self, part: Errors) -> bool {
        match part.0 {
            Some(e) => {
                self.push(e);
                false
            }
            None => true,
        }
    }

    pub fn to_compile_errors(&self) -> TokenStream {
        match &self.0 {
            Some(e) => e.to_compile_error(),
            None => TokenStream::new(),
        }
    }
}

/// A comma-separated list of `key`, `key = value` and `key(...)` items.
pub fn parse_list(tokens: TokenStream, errors: &mut Errors) -> Vec<Meta> {
    match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(list) => list.into_iter().collect(),
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "{e}; expected a comma-separated list of `key = value`, `key` or `key(...)`"
                ),
            ));
            Vec::new()
        }
    }
}

pub fn key_of(meta: &Meta) -> String {
    meta.path()
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_else(|| quote!(#meta).to_string())
}

/// A duration written as a string: `"500ms"`, `"5s"`, `"2m"`, `"1h"` (also `ns`, `us`).
pub fn parse_duration_lit(lit: &syn::LitStr, errors: &mut Errors) -> Option<(u64, u32)> {
    let text = lit.value();
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected = "expected a duration such as \"500ms\", \"5s\", \"2m\" or \"1h\" \
                    (a whole number and one of ns, us, ms, s, m, h)";
    let Ok(n) = digits.parse::<u64>() else {
        errors.at(
            lit,
            format!("`{}` is not a duration: {expected}", lit.value()),
        );
        return None;
    };
    let nanos_per: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => {
            errors.at(
                lit,
                format!("`{}` is not a duration: {expected}", lit.value()),
            );
            return None;
        }
    };
    let total = u128::from(n) * nanos_per;
    let secs = total / 1_000_000_000;
    if secs > u128::from(u64::MAX) {
        errors.at(lit, "this duration is too long");
        return None;
    }
    Some((secs as u64, (total % 1_000_000_000) as u32))
}

pub fn duration_tokens((secs, nanos): (u64, u32)) -> TokenStream {
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// A duration value: a string literal, or `infinity` where `allow_infinity` (no bound:
/// `Duration::MAX`, canopy's "no bound" everywhere).
pub fn duration_value(
    expr: &Expr,
    key: &str,
    allow_infinity: bool,
    errors: &mut Errors,
) -> Option<TokenStream> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => parse_duration_lit(s, errors).map(duration_tokens),
        Expr::Path(p) if allow_infinity && p.path.is_ident("infinity") => {
            Some(quote!(::core::time::Duration::MAX))
        }
        _ => {
            let also = if allow_infinity { " or `infinity`" } else { "" };
            errors.at(
                expr,
                format!("`{key}` takes a duration in quotes, such as \"500ms\" or \"5s\"{also}"),
            );
            None
        }
    }
}

fn ident_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
        _ => None,
    }
}

pub fn value_of<'a>(meta: &'a Meta, errors: &mut Errors, what: &str) -> Option<&'a Expr> {
    match meta {
        Meta::NameValue(nv) => Some(&nv.value),
        _ => {
            errors.at(
                meta,
                format!("`{}` takes a value: `{}`", key_of(meta), what),
            );
            None
        }
    }
}

pub fn int_value<T: std::str::FromStr>(expr: &Expr, key: &str, errors: &mut Errors) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                errors.at(i, format!("`{key}`: {e}"));
                None
            }
        },
        _ => {
            errors.at(
                expr,
                format!("`{key}` takes a whole number, such as `{key} = 3`"),
            );
            None
        }
    }
}

/// The restart type: `permanent`, `transient` or `temporary`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Permanent,
    Transient,
    Temporary,
}

pub fn restart_value(expr: &Expr, errors: &mut Errors) -> Option<Restart> {
    match ident_of(expr).as_deref() {
        Some("permanent") => Some(Restart::Permanent),
        Some("transient") => Some(Restart::Transient),
        Some("temporary") => Some(Restart::Temporary),
        _ => {
            errors.at(
                expr,
                format!(
                    "`{}` is not a restart type: expected `permanent`, `transient` or `temporary`",
                    quote!(#expr)
                ),
            );
            None
        }
    }
}

pub fn restart_tokens(r: Restart) -> TokenStream {
    match r {
        Restart::Permanent => quote!(::canopy::Restart::Permanent),
        Restart::Transient => quote!(::canopy::Restart::Transient),
        Restart::Temporary => quote!(::canopy::Restart::Temporary),
    }
}

/// A shutdown policy: `brutal_kill`, `"5s"`, `infinity` or `drain("2s")`.
pub fn shutdown_value(expr: &Expr, errors: &mut Errors) -> Option<TokenStream> {
    let expected =
        "expected `brutal_kill`, a duration such as \"5s\", `infinity` or `drain(\"2s\")`";
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => parse_duration_lit(s, errors).map(|d| {
            let d = duration_tokens(d);
            quote!(::canopy::Shutdown::Timeout(#d))
        }),
        Expr::Path(p) if p.path.is_ident("brutal_kill") => {
            Some(quote!(::canopy::Shutdown::BrutalKill))
        }
        Expr::Path(p) if p.path.is_ident("infinity") => Some(quote!(::canopy::Shutdown::Infinity)),
        Expr::Call(call) if ident_of(&call.func).as_deref() == Some("drain") => {
            match call.args.iter().collect::<Vec<_>>().as_slice() {
                [Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                })] => parse_duration_lit(s, errors).map(|d| {
                    let d = duration_tokens(d);
                    quote!(::canopy::Shutdown::Drain(#d))
                }),
                _ => {
                    errors.at(
                        &call.args,
                        "`drain` takes one duration in quotes, such as `drain(\"2s\")`",
                    );
                    None
                }
            }
        }
        _ => {
            errors.at(
                expr,
                format!("`{}` is not a shutdown policy: {expected}", quote!(#expr)),
            );
            None
        }
    }
}

pub fn kind_value(expr: &Expr, errors: &mut Errors) -> Option<TokenStream> {
    match ident_of(expr).as_deref() {
        Some("worker") => Some(quote!(::canopy::ChildKind::Worker)),
        Some("supervisor") => Some(quote!(::canopy::ChildKind::Supervisor)),
        _ => {
            errors.at(
                expr,
                format!(
                    "`{}` is not a child kind: expected `worker` or `supervisor`",
                    quote!(#expr)
                ),
            );
            None
        }
    }
}

/// `backoff(min = "100ms", max = "10s", jitter = 0.2, reset_after = "30s", max_retries = 10)`.
pub fn backoff_value(meta: &Meta, errors: &mut Errors) -> Option<TokenStream> {
    let usage = "backoff(min = \"100ms\", max = \"10s\") with optional jitter = 0.2, \
                 reset_after = \"30s\", max_retries = 10";
    let Meta::List(list) = meta else {
        errors.at(meta, format!("`backoff` takes a list: `{usage}`"));
        return None;
    };
    let mut min = None;
    let mut max = None;
    let mut extra = Vec::new();
    let mut ok = true;
    for item in parse_list(list.tokens.clone(), errors) {
        let key = key_of(&item);
        let Some(value) = value_of(&item, errors, usage) else {
            ok = false;
            continue;
        };
        match key.as_str() {
            "min" => min = duration_value(value, "min", false, errors),
            "max" => max = duration_value(value, "max", false, errors),
            "reset_after" => match duration_value(value, "reset_after", false, errors) {
                Some(d) => extra.push(quote!(.reset_after(#d))),
                None => ok = false,
            },
            "max_retries" => match int_value::<u32>(value, "max_retries", errors) {
                Some(n) => extra.push(quote!(.max_retries(#n))),
                None => ok = false,
            },
            "jitter" => match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Float(f), ..
                }) => match f.base10_parse::<f64>() {
                    Ok(j) if (0.0..=1.0).contains(&j) => extra.push(quote!(.jitter(#j))),
                    _ => {
                        errors.at(f, "`jitter` is a fraction between 0.0 and 1.0");
                        ok = false;
                    }
                },
                _ => {
                    errors.at(
                        value,
                        "`jitter` is a fraction between 0.0 and 1.0, such as `0.2`",
                    );
                    ok = false;
                }
            },
            _ => {
                errors.at(
                    item.path(),
                    format!(
                        "unknown backoff key `{key}`: expected `min`, `max`, `jitter`, `reset_after` or `max_retries`"
                    ),
                );
                ok = false;
            }
        }
    }
    match (min, max) {
        (Some(min), Some(max)) if ok => Some(quote!(
            ::canopy::backoff::Backoff::new(#min, #max) #(#extra)*
        )),
        (None, _) | (_, None) if ok => {
            errors.at(
                list,
                format!("`backoff` needs both `min` and `max`: `{usage}`"),
            );
            None
        }
        _ => None,
    }
}

/// The child-spec settings a type or a field declares.
#[derive(Default)]
pub struct ChildSettings {
    pub restart: Option<(Restart, Span)>,
    pub shutdown: Option<TokenStream>,
    pub kind: Option<TokenStream>,
    pub significant: Option<Span>,
    pub backoff: Option<TokenStream>,
}

impl ChildSettings {
    /// Takes `meta` if it is one of the child-spec keys; false if it is not one of them.
    pub fn take(&mut self, meta: &Meta, allow_kind: bool, errors: &mut Errors) -> bool {
        let key = key_of(meta);
        match key.as_str() {
            "restart" => {
                if let Some(v) = value_of(meta, errors, "restart = transient") {
                    self.restart = restart_value(v, errors).map(|r| (r, meta.span()));
                }
            }
            "shutdown" => {
                if let Some(v) = value_of(meta, errors, "shutdown = \"5s\"") {
                    self.shutdown = shutdown_value(v, errors);
                }
            }
            "kind" if allow_kind => {
                if let Some(v) = value_of(meta, errors, "kind = worker") {
                    self.kind = kind_value(v, errors);
                }
            }
            "significant" => match meta {
                Meta::Path(p) => self.significant = Some(p.span()),
                _ => errors.at(
                    meta,
                    "`significant` takes no value: write `significant` alone",
                ),
            },
            "backoff" => self.backoff = backoff_value(meta, errors),
            _ => return false,
        }
        true
    }

    /// Rejects `significant` with a permanent restart type, as OTP's `check_childspecs` does at
    /// run time. `default_permanent`: no restart type here means permanent.
    pub fn check_significant(&self, default_permanent: bool, errors: &mut Errors) {
        let Some(span) = self.significant else {
            return;
        };
        let permanent = match self.restart {
            Some((r, _)) => r == Restart::Permanent,
            None => default_permanent,
        };
        if permanent {
            errors.push(syn::Error::new(
                span,
                "a significant child cannot be permanent (OTP rejects it): \
                 add `restart = transient` or `restart = temporary`",
            ));
        }
    }

    /// A `ChildDefaults` value starting from `base`.
    pub fn defaults_tokens(&self, base: TokenStream) -> TokenStream {
        let mut fields = Vec::new();
        if let Some((r, span)) = self.restart {
            let r = restart_tokens(r);
            fields.push(quote_spanned!(span=> restart: #r,));
        }
        if let Some(s) = &self.shutdown {
            fields.push(quote!(shutdown: ::core::option::Option::Some(#s),));
        }
        if let Some(k) = &self.kind {
            fields.push(quote!(kind: #k,));
        }
        if self.significant.is_some() {
            fields.push(quote!(significant: true,));
        }
        if let Some(b) = &self.backoff {
            fields.push(quote!(backoff: ::core::option::Option::Some(#b),));
        }
        quote!(::canopy::service::ChildDefaults { #(#fields)* ..#base })
    }

    /// Builder calls that apply these settings to a `ChildSpec`.
    pub fn spec_calls(&self) -> TokenStream {
        let mut calls = Vec::new();
        if let Some((r, _)) = self.restart {
            let r = restart_tokens(r);
            calls.push(quote!(.restart(#r)));
        }
        if let Some(k) = &self.kind {
            calls.push(quote!(.kind(#k)));
        }
        if let Some(s) = &self.shutdown {
            calls.push(quote!(.shutdown(#s)));
        }
        if self.significant.is_some() {
            calls.push(quote!(.significant(true)));
        }
        if let Some(b) = &self.backoff {
            calls.push(quote!(.backoff(#b)));
        }
        quote!(#(#calls)*)
    }

    pub fn restart_tokens(&self) -> Option<TokenStream> {
        self.restart.map(|(r, _)| restart_tokens(r))
    }
}
