//! `#[canopy::service]`: an impl block's methods become an actor's messages, with a typed client.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ImplItem, ImplItemFn, ItemImpl, Meta,
    Pat, PathArguments, ReturnType, Type,
};

use crate::attrs::{self, ChildSettings, Errors};

/// Names the client has of its own, which a method may not take.
const CLIENT_OWN: &[&str] = &[
    "new",
    "from_handle",
    "from_actor",
    "with_timeout",
    "endpoint",
    "current",
];

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let msg = syn::Error::new(
                e.span(),
                format!("#[canopy::service] goes on an inherent `impl` block: {e}"),
            );
            let err = msg.to_compile_error();
            // Not an impl block: give it back as it was, with the error.
            return quote!(#err #input);
        }
    };
    let options = Options::parse(args, &mut errors);
    let service = analyse(&mut item, &mut errors);
    // The impl block is emitted whatever happened (our attributes stripped), and so is the code
    // for every part without an error (a method in error is left out of the enum and the client,
    // a malformed option keeps its default), so that the rest of the crate still type-checks and
    // completion keeps working while the errors are fixed. Only what the generated code cannot
    // stand on (no constructor, a trait impl, lifetime or const parameters) stops it.
    let generated = match service {
        Some(service) => generate(&item, &options, &service),
        None => TokenStream::new(),
    };
    let errors = errors.to_compile_errors();
    quote!(#item #generated #errors)
}

struct Options {
    child: ChildSettings,
    client: Option<Ident>,
    timeout: Option<TokenStream>,
}

impl Options {
    fn parse(args: TokenStream, errors: &mut Errors) -> Options {
        let mut options = Options {
            child: ChildSettings::default(),
            client: None,
            timeout: None,
        };
        for meta in attrs::parse_list(args, errors) {
            if options.child.take(&meta, false, errors) {
                continue;
            }
            match attrs::key_of(&meta).as_str() {
                "client" => {
                    if let Some(v) = attrs::value_of(&meta, errors, "client = CounterClient") {
                        match v {
                            syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                                options.client = p.path.get_ident().cloned()
                            }
                            _ => errors.at(v, "`client` takes the client's name, such as `client = CounterClient`"),
                        }
                    }
                }
                "timeout" => {
                    if let Some(v) = attrs::value_of(&meta, errors, "timeout = \"5s\"") {
                        options.timeout = attrs::duration_value(v, "timeout", true, errors);
                    }
                }
                key => errors.at(
                    meta.path(),
                    format!(
                        "unknown key `{key}` in #[canopy::service]: expected `restart`, `shutdown`, \
                         `significant`, `backoff`, `timeout` or `client`"
                    ),
                ),
            }
        }
        options.child.check_significant(true, errors);
        options
    }
}

/// A parameter of a message method or of the constructor.
struct Param {
    name: Ident,
    ty: Type,
}

enum CtxParam {
    ByRef,
    ByValue,
}

// A handful of these live for one expansion: their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    /// No return value: a cast.
    Cast,
    /// `#[cast]` returning `Result<(), E>`: an `Err` fails the actor.
    CastResult,
    /// A return value (or `#[call]`): a call.
    Call {
        reply: Type,
        timeout: Option<TokenStream>,
    },
    /// A call returning `Result<T, E>`: `Err` reaches the caller as `CallError::Handler`.
    CallResult {
        ok: Type,
        err: Type,
        timeout: Option<TokenStream>,
    },
}

struct Method {
    ident: Ident,
    vis: syn::Visibility,
    asyncness: bool,
    docs: Vec<Attribute>,
    params: Vec<Param>,
    /// Where the context goes among the arguments.
    ctx: Option<(usize, CtxParam)>,
    kind: Kind,
}

struct Init {
    ident: Ident,
    asyncness: bool,
    params: Vec<Param>,
    ctx: Option<(usize, CtxParam)>,
    fallible: bool,
    paren: Span,
}

struct OnStop {
    ident: Ident,
    asyncness: bool,
    /// The reason's position and the context's, in order.
    ctx: Option<(usize, CtxParam)>,
}

struct Analysed {
    self_ident: Ident,
    init: Init,
    methods: Vec<Method>,
    on_stop: Option<OnStop>,
}

fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let pos = attrs.iter().position(|a| a.path().is_ident(name))?;
    Some(attrs.remove(pos))
}

fn analyse(item: &mut ItemImpl, errors: &mut Errors) -> Option<Analysed> {
    if let Some((_, path, _)) = &item.trait_ {
        errors.at(
            path,
            "#[canopy::service] goes on an inherent impl block (`impl Counter { .. }`), not on a trait impl",
        );
        return None;
    }
    if let Some(unsafety) = &item.unsafety {
        errors.at(
            unsafety,
            "#[canopy::service] does not take an `unsafe impl`",
        );
    }
    let mut fatal = false;
    for param in &item.generics.params {
        match param {
            GenericParam::Lifetime(l) => {
                fatal = true;
                errors.at(
                    l,
                    "a service cannot have lifetime parameters: an actor owns its state ('static)",
                )
            }
            GenericParam::Const(c) => {
                fatal = true;
                errors.at(
                    c,
                    "a service cannot have const generic parameters; use a type parameter or a field",
                )
            }
            GenericParam::Type(_) => {}
        }
    }
    let self_ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    if self_ident.is_none() {
        errors.at(
            &item.self_ty,
            "#[canopy::service] needs a named type, such as `impl Counter`",
        );
    }
    let self_ty = (*item.self_ty).clone();

    let mut inits: Vec<Init> = Vec::new();
    let mut methods = Vec::new();
    let mut on_stops: Vec<OnStop> = Vec::new();
    // Every method marked #[on_stop], valid or not, for the "at most one" rule.
    let mut hook_names: Vec<Ident> = Vec::new();

    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let call_attr = take_attr(&mut f.attrs, "call");
        let cast_attr = take_attr(&mut f.attrs, "cast");
        let on_stop_attr = take_attr(&mut f.attrs, "on_stop");
        let init_attr = take_attr(&mut f.attrs, "init");
        let skip_attr = take_attr(&mut f.attrs, "skip");
        if skip_attr.is_some() {
            continue;
        }
        let has_receiver = matches!(f.sig.inputs.first(), Some(FnArg::Receiver(_)));
        // A method named `init` is the constructor even with a receiver: saying why it cannot
        // take `self` helps more than "no constructor".
        let is_init = init_attr.is_some() || f.sig.ident == "init";
        if is_init {
            if let Some(a) = call_attr
                .as_ref()
                .or(cast_attr.as_ref())
                .or(on_stop_attr.as_ref())
            {
                errors.at(a, "the constructor is not a message: remove this attribute");
            }
            let mut local = Errors::default();
            let init = analyse_init(f, &self_ty, &mut local);
            // A constructor in error cannot be called: nothing can be generated without it.
            fatal |= !local.is_empty();
            errors.absorb(local);
            inits.extend(init);
            continue;
        }
        if let Some(a) = on_stop_attr {
            if let Some(a) = call_attr.as_ref().or(cast_attr.as_ref()) {
                errors.at(
                    a,
                    "the #[on_stop] hook is not a message: remove this attribute",
                );
            }
            hook_names.push(f.sig.ident.clone());
            let mut local = Errors::default();
            let hook = analyse_on_stop(f, &a, &mut local);
            if errors.absorb(local) {
                on_stops.extend(hook);
            }
            continue;
        }
        if !has_receiver {
            if let Some(a) = call_attr.as_ref().or(cast_attr.as_ref()) {
                errors.at(
                    a,
                    "a message method takes `&self` or `&mut self`; an associated function without `self` cannot be a message",
                );
            }
            // A plain associated function: a helper, left as it is.
            continue;
        }
        let mut local = Errors::default();
        if let (Some(_), Some(cast)) = (&call_attr, &cast_attr) {
            local.at(cast, "a method is a call or a cast, not both");
        }
        let name = f.sig.ident.to_string();
        if CLIENT_OWN.contains(&name.as_str()) {
            local.at(
                &f.sig.ident,
                format!(
                    "a message method cannot be called `{name}`: the client has a `{name}` of its own; rename the method"
                ),
            );
        }
        let method = analyse_method(
            f,
            call_attr.as_ref(),
            cast_attr.as_ref(),
            &self_ty,
            &mut local,
        );
        // A method in error is left out of the enum and the client; the others go on.
        if errors.absorb(local) {
            methods.extend(method);
        }
    }

    let init = match inits.len() {
        0 => {
            errors.at(
                &item.self_ty,
                "a service needs a constructor: add `fn init(..) -> Self` (or `-> Result<Self, E>`, \
                 sync or async), whose arguments are the child's start arguments",
            );
            None
        }
        1 => inits.pop(),
        _ => {
            for extra in &inits[1..] {
                errors.at(
                    &extra.ident,
                    format!(
                        "a service has one constructor, and `{}` is one already: keep one `init` (or one #[init])",
                        inits[0].ident
                    ),
                );
            }
            inits.into_iter().next()
        }
    };
    for extra in hook_names.iter().skip(1) {
        errors.at(extra, "a service has at most one #[on_stop] hook");
    }
    if on_stops.len() > 1 {
        on_stops.truncate(1);
    }
    if fatal {
        return None;
    }
    Some(Analysed {
        self_ident: self_ident?,
        init: init?,
        methods,
        on_stop: on_stops.into_iter().next(),
    })
}

/// Whether `ty` is `Ctx<..>` (the last path segment named `Ctx` with one type argument).
fn is_ctx_type(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "Ctx"
                && matches!(&s.arguments, PathArguments::AngleBracketed(a) if a.args.len() == 1)
        }),
        _ => false,
    }
}

fn ctx_kind(ty: &Type) -> Option<CtxParam> {
    match ty {
        Type::Reference(r) if r.mutability.is_none() && is_ctx_type(&r.elem) => {
            Some(CtxParam::ByRef)
        }
        t if is_ctx_type(t) => Some(CtxParam::ByValue),
        _ => None,
    }
}

/// Finds what a message's argument or reply type may not contain: borrowed data (other than
/// `'static`) and `impl Trait`.
struct Borrowed<'a> {
    errors: &'a mut Errors,
    what: &'static str,
}

impl<'ast> Visit<'ast> for Borrowed<'_> {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
            self.errors.at(
                r,
                format!(
                    "{} cannot borrow: a message travels to another task, so it must own its data \
                     (take `String` rather than `&str`, `Vec<T>` rather than `&[T]`), or be `&'static`",
                    self.what
                ),
            );
            return;
        }
        syn::visit::visit_type_reference(self, r);
    }

    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" && l.ident != "_" {
            self.errors.at(
                l,
                format!(
                    "{} cannot hold a borrowed lifetime: a message must own its data",
                    self.what
                ),
            );
        }
    }

    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.errors.at(
            t,
            format!(
                "{} cannot be `impl Trait`: the message enum needs one concrete type; name the type \
                 (or box it: `Box<dyn Trait + Send>`)",
                self.what
            ),
        );
    }
}

/// Checks what `ty` holds; a reference at the top is the caller's to report, with a message of
/// its own, so only what it refers to is looked at.
fn check_owned(ty: &Type, what: &'static str, errors: &mut Errors) {
    let inner = match ty {
        Type::Reference(r) => &*r.elem,
        t => t,
    };
    Borrowed { errors, what }.visit_type(inner);
}

/// What to take instead of a reference to `elem`.
fn owned_suggestion(elem: &Type) -> String {
    match elem {
        Type::Path(p) if p.path.is_ident("str") => "String".to_string(),
        Type::Slice(s) => format!("Vec<{}>", s.elem.to_token_stream()),
        t => t.to_token_stream().to_string(),
    }
}

/// `Self` in a type means the service here, and the enum or client where the type is copied to.
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.is_ident("Self") {
                *ty = self.0.clone();
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }

    fn visit_type_path_mut(&mut self, p: &mut syn::TypePath) {
        // `Self::Assoc`: qualify it as `<Service as ..>` is not possible here; leave `Self`
        // paths with more segments to the type checker, which reports them in place.
        syn::visit_mut::visit_type_path_mut(self, p);
    }
}

fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let mut ty = ty.clone();
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}

/// The parameters after the receiver (or all of them), with the context's position.
fn params(
    f: &ImplItemFn,
    self_ty: &Type,
    what: &'static str,
    errors: &mut Errors,
) -> (Vec<Param>, Option<(usize, CtxParam)>) {
    let mut out = Vec::new();
    let mut ctx = None;
    let mut position = 0;
    for input in &f.sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        if let Some(kind) = ctx_kind(&pt.ty) {
            if ctx.is_some() {
                errors.at(&pt.ty, "a method takes the context at most once");
            }
            ctx = Some((position, kind));
            position += 1;
            continue;
        }
        let name = match &*pt.pat {
            Pat::Ident(p) if p.ident != "self" => p.ident.clone(),
            _ => format_ident!("arg{}", out.len()),
        };
        if let Type::Reference(r) = &*pt.ty {
            if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
                errors.at(
                    &pt.ty,
                    format!(
                        "{what} cannot take a reference: a message travels to another task, so it \
                         must own its arguments (take `{}` instead); only the context may be \
                         borrowed (`ctx: &Ctx<Self>`)",
                        owned_suggestion(&r.elem)
                    ),
                );
            }
        }
        check_owned(&pt.ty, "an argument", errors);
        out.push(Param {
            name,
            ty: replace_self(&pt.ty, self_ty),
        });
        position += 1;
    }
    (out, ctx)
}

fn check_signature(f: &ImplItemFn, errors: &mut Errors) {
    if !f.sig.generics.params.is_empty() {
        errors.at(
            &f.sig.generics,
            "a message method cannot be generic: the message enum needs one concrete type per argument; \
             put the type parameter on the service (`impl<T> Store<T>`) instead",
        );
    }
    if let Some(w) = &f.sig.generics.where_clause {
        errors.at(
            w,
            "a message method cannot have its own where clause; put it on the impl block",
        );
    }
    if let Some(u) = &f.sig.unsafety {
        errors.at(u, "a message method cannot be `unsafe`");
    }
    if let Some(abi) = &f.sig.abi {
        errors.at(abi, "a message method cannot be `extern`");
    }
    if let Some(v) = &f.sig.variadic {
        errors.at(v, "a message method cannot be variadic");
    }
}

fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next()?;
    types.next().is_none().then_some((ok, err))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

fn call_timeout(attr: &Attribute, errors: &mut Errors) -> Option<TokenStream> {
    match &attr.meta {
        Meta::Path(_) => None,
        Meta::List(list) => {
            let mut timeout = None;
            for meta in attrs::parse_list(list.tokens.clone(), errors) {
                match attrs::key_of(&meta).as_str() {
                    "timeout" => {
                        if let Some(v) = attrs::value_of(&meta, errors, "timeout = \"500ms\"") {
                            timeout = attrs::duration_value(v, "timeout", true, errors);
                        }
                    }
                    key => errors.at(
                        meta.path(),
                        format!("unknown key `{key}` in #[call]: expected `timeout = \"500ms\"` or `timeout = infinity`"),
                    ),
                }
            }
            timeout
        }
        Meta::NameValue(nv) => {
            errors.at(nv, "write #[call] or #[call(timeout = \"500ms\")]");
            None
        }
    }
}

fn analyse_method(
    f: &ImplItemFn,
    call_attr: Option<&Attribute>,
    cast_attr: Option<&Attribute>,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Method> {
    check_signature(f, errors);
    if let Some(FnArg::Receiver(r)) = f.sig.inputs.first() {
        let by_ref = r.reference.is_some() && r.colon_token.is_none();
        if !by_ref {
            errors.at(
                r,
                "a message method takes `&self` or `&mut self`: the actor keeps its state between \
                 messages, so a method cannot consume it (`self`) or take another receiver type",
            );
        }
    }
    let (params, ctx) = params(f, self_ty, "a message method", errors);
    if let Some(a) = cast_attr {
        if !matches!(a.meta, Meta::Path(_)) {
            errors.at(a, "#[cast] takes no arguments");
        }
    }
    let timeout = call_attr.and_then(|a| call_timeout(a, errors));
    let kind = match &f.sig.output {
        ReturnType::Default => {
            if call_attr.is_some() {
                Kind::Call {
                    reply: syn::parse_quote!(()),
                    timeout,
                }
            } else {
                Kind::Cast
            }
        }
        ReturnType::Type(_, ty) => {
            if let Type::Reference(r) = &**ty {
                if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
                    errors.at(
                        ty,
                        "a message method cannot return a reference: the reply travels to another \
                         task, so it must be owned (return a clone, or an `Arc`)",
                    );
                }
            }
            check_owned(ty, "a reply", errors);
            let ty = replace_self(ty, self_ty);
            if let Some(cast) = cast_attr {
                match result_parts(&ty) {
                    Some((ok, _)) if is_unit(&ok) => Kind::CastResult,
                    _ => {
                        errors.at(
                            cast,
                            "a #[cast] returns nothing, or `Result<(), E>` (an `Err` fails the actor); \
                             a method that returns a value is a call",
                        );
                        Kind::Cast
                    }
                }
            } else if is_unit(&ty) && call_attr.is_none() {
                Kind::Cast
            } else if let Some((ok, err)) = result_parts(&ty) {
                Kind::CallResult { ok, err, timeout }
            } else {
                Kind::Call { reply: ty, timeout }
            }
        }
    };
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Some(Method {
        ident: f.sig.ident.clone(),
        vis: f.vis.clone(),
        asyncness: f.sig.asyncness.is_some(),
        docs,
        params,
        ctx,
        kind,
    })
}

/// Whether `ty` is `Self` or the service's own name.
fn is_self(ty: &Type, self_ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self") => true,
        t => t.to_token_stream().to_string() == self_ty.to_token_stream().to_string(),
    }
}

fn analyse_init(f: &ImplItemFn, self_ty: &Type, errors: &mut Errors) -> Option<Init> {
    if !f.sig.generics.params.is_empty() {
        errors.at(&f.sig.generics, "the constructor cannot be generic: its arguments are the child's start arguments, one concrete type each");
    }
    if let Some(FnArg::Receiver(r)) = f.sig.inputs.first() {
        errors.at(r, "the constructor takes no `self`: it makes the service's value from its start arguments");
    }
    let (params, ctx) = params(f, self_ty, "the constructor", errors);
    let fallible = match &f.sig.output {
        ReturnType::Default => {
            errors.at(
                &f.sig.ident,
                "the constructor returns the service's value: `-> Self` or `-> Result<Self, E>`",
            );
            false
        }
        ReturnType::Type(_, ty) => {
            if is_self(ty, self_ty) {
                false
            } else if result_parts(ty).is_some_and(|(ok, _)| is_self(&ok, self_ty)) {
                true
            } else {
                errors.at(
                    ty,
                    "the constructor returns the service's value: `-> Self` or `-> Result<Self, E>`",
                );
                false
            }
        }
    };
    Some(Init {
        ident: f.sig.ident.clone(),
        asyncness: f.sig.asyncness.is_some(),
        params,
        ctx,
        fallible,
        paren: f.sig.paren_token.span.join(),
    })
}

fn analyse_on_stop(f: &ImplItemFn, attr: &Attribute, errors: &mut Errors) -> Option<OnStop> {
    if !matches!(attr.meta, Meta::Path(_)) {
        errors.at(attr, "#[on_stop] takes no arguments");
    }
    check_signature(f, errors);
    match f.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none() => {}
        _ => errors.at(
            &f.sig.ident,
            "the #[on_stop] hook takes `&mut self` (or `&self`) and the exit reason: \
             `fn stopped(&mut self, reason: canopy::ExitReason)`",
        ),
    }
    if !matches!(f.sig.output, ReturnType::Default) {
        errors.at(&f.sig.output, "the #[on_stop] hook returns nothing");
    }
    let mut ctx = None;
    let mut reasons = 0;
    let mut position = 0;
    for input in f.sig.inputs.iter() {
        let FnArg::Typed(pt) = input else { continue };
        if let Some(kind) = ctx_kind(&pt.ty) {
            ctx = Some((position, kind));
        } else {
            reasons += 1;
        }
        position += 1;
    }
    if reasons != 1 {
        errors.at(
            &f.sig.inputs,
            "the #[on_stop] hook takes the exit reason (and optionally the context): \
             `fn stopped(&mut self, reason: canopy::ExitReason)`",
        );
    }
    Some(OnStop {
        ident: f.sig.ident.clone(),
        asyncness: f.sig.asyncness.is_some(),
        ctx,
    })
}

/// The arguments of a call to a method: `values` in order, with the context at its position.
fn with_ctx(values: Vec<TokenStream>, ctx: &Option<(usize, CtxParam)>) -> Vec<TokenStream> {
    let mut values = values;
    if let Some((at, kind)) = ctx {
        let c = match kind {
            CtxParam::ByRef => quote!(__canopy_ctx),
            CtxParam::ByValue => quote!(::core::clone::Clone::clone(__canopy_ctx)),
        };
        values.insert((*at).min(values.len()), c);
    }
    values
}

fn generate(item: &ItemImpl, options: &Options, s: &Analysed) -> TokenStream {
    let self_ty = &item.self_ty;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let client = options
        .client
        .clone()
        .unwrap_or_else(|| format_ident!("{}Client", s.self_ident));
    let type_params: Vec<&Ident> = item.generics.type_params().map(|t| &t.ident).collect();
    let name = s.self_ident.to_string();
    let enum_generics = &item.generics;
    let enum_where = &item.generics.where_clause;

    // The private message enum: a variant per method, named after it.
    let variants = s.methods.iter().map(|m| {
        let ident = &m.ident;
        let tys = m.params.iter().map(|p| &p.ty);
        let reply = match &m.kind {
            Kind::Cast | Kind::CastResult => None,
            Kind::Call { reply, .. } => Some(quote!(::canopy::ractor::RpcReplyPort<#reply>)),
            Kind::CallResult { ok, err, .. } => {
                Some(quote!(::canopy::ractor::RpcReplyPort<::core::result::Result<#ok, #err>>))
            }
        };
        let fields = tys.map(|t| quote!(#t)).chain(reply);
        quote!(#ident(#(#fields),*))
    });

    // One arm per method in the actor's match.
    let arms = s.methods.iter().map(|m| {
        let ident = &m.ident;
        let names: Vec<Ident> = (0..m.params.len())
            .map(|i| format_ident!("__a{i}"))
            .collect();
        let args = with_ctx(names.iter().map(|n| quote!(#n)).collect(), &m.ctx);
        let invoke = if m.asyncness {
            quote!(<#self_ty>::#ident(self, #(#args),*).await)
        } else {
            quote!(<#self_ty>::#ident(self, #(#args),*))
        };
        match &m.kind {
            Kind::Cast => quote!(__CanopyMsg::#ident(#(#names),*) => { #invoke; }),
            Kind::CastResult => quote!(__CanopyMsg::#ident(#(#names),*) => {
                #invoke.map_err(::canopy::service::__private::fail)?;
            }),
            Kind::Call { .. } | Kind::CallResult { .. } => quote!(
                __CanopyMsg::#ident(#(#names,)* __canopy_reply) => {
                    let __canopy_out = #invoke;
                    // Counted before the reply goes out, so that the caller reads it counted.
                    ::canopy::service::__private::handled(__canopy_ctx);
                    // The caller may have given up (timeout): nobody to tell.
                    let _ = __canopy_reply.send(__canopy_out);
                }
            ),
        }
    });

    // The client's methods.
    let client_methods = s.methods.iter().map(|m| {
        let ident = &m.ident;
        let vis = &m.vis;
        let docs = &m.docs;
        let names: Vec<&Ident> = m.params.iter().map(|p| &p.name).collect();
        let tys: Vec<&Type> = m.params.iter().map(|p| &p.ty).collect();
        let timeout = |t: &Option<TokenStream>| {
            t.clone()
                .or_else(|| options.timeout.clone())
                .unwrap_or_else(|| quote!(::canopy::service::DEFAULT_CALL_TIMEOUT))
        };
        match &m.kind {
            Kind::Cast | Kind::CastResult => quote!(
                #(#docs)*
                ///
                /// A cast: returns once the message is in the service's mailbox.
                #vis fn #ident(&self, #(#names: #tys),*)
                    -> ::canopy::service::Cast<'_, <#self_ty as ::canopy::service::Service>::Msg>
                {
                    self.endpoint.cast(__CanopyMsg::#ident(#(#names),*))
                }
            ),
            Kind::Call { reply, timeout: t } => {
                let t = timeout(t);
                quote!(
                    #(#docs)*
                    ///
                    /// A call: waits for the reply, up to the call's timeout.
                    #vis async fn #ident(&self, #(#names: #tys),*)
                        -> ::core::result::Result<#reply, ::canopy::service::CallError>
                    {
                        self.endpoint
                            .call(|__canopy_reply| __CanopyMsg::#ident(#(#names,)* __canopy_reply), #t)
                            .await
                    }
                )
            }
            Kind::CallResult { ok, err, timeout: t } => {
                let t = timeout(t);
                quote!(
                    #(#docs)*
                    ///
                    /// A call: waits for the reply, up to the call's timeout; the method's own
                    /// error is `CallError::Handler`.
                    #vis async fn #ident(&self, #(#names: #tys),*)
                        -> ::core::result::Result<#ok, ::canopy::service::CallError<#err>>
                    {
                        self.endpoint
                            .call_result(|__canopy_reply| __CanopyMsg::#ident(#(#names,)* __canopy_reply), #t)
                            .await
                    }
                )
            }
        }
    });

    // The constructor.
    let init = &s.init;
    let init_ident = &init.ident;
    let arg_tys: Vec<&Type> = init.params.iter().map(|p| &p.ty).collect();
    let arg_names: Vec<Ident> = (0..init.params.len())
        .map(|i| format_ident!("__a{i}"))
        .collect();
    let args_ty = match arg_tys.as_slice() {
        [] => quote!(()),
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    };
    let args_ty = quote_spanned!(init.paren=> #args_ty);
    let unpack = match arg_names.as_slice() {
        [] => quote!(let () = __canopy_args;),
        [one] => quote!(let #one = __canopy_args;),
        many => quote!(let (#(#many,)*) = __canopy_args;),
    };
    let init_args = with_ctx(arg_names.iter().map(|n| quote!(#n)).collect(), &init.ctx);
    let mut init_call = quote!(<#self_ty>::#init_ident(#(#init_args),*));
    if init.asyncness {
        init_call = quote!(#init_call.await);
    }
    let init_body = if init.fallible {
        quote!(#init_call.map_err(::canopy::service::__private::fail))
    } else {
        quote!(::core::result::Result::Ok(#init_call))
    };

    let on_stop = s.on_stop.as_ref().map(|hook| {
        let ident = &hook.ident;
        let args = with_ctx(vec![quote!(__canopy_reason)], &hook.ctx);
        let call = if hook.asyncness {
            quote!(<#self_ty>::#ident(self, #(#args),*).await)
        } else {
            quote!(<#self_ty>::#ident(self, #(#args),*))
        };
        quote!(
            async fn __on_stop(
                &mut self,
                __canopy_reason: ::canopy::ExitReason,
                __canopy_ctx: &::canopy::service::Ctx<Self>,
            ) {
                let _ = __canopy_ctx;
                #call;
            }
        )
    });

    let defaults = options
        .child
        .defaults_tokens(quote!(::canopy::service::ChildDefaults::WORKER));
    let restart = options
        .child
        .restart_tokens()
        .unwrap_or_else(|| quote!(::canopy::Restart::Permanent));
    let client_doc = format!(
        "The typed client of the service [`{name}`]: one async method per message method. \
         Generated by `#[canopy::service]`; it follows the child across restarts when made with \
         [`new`](Self::new) or [`from_handle`](Self::from_handle)."
    );
    let client_vis = quote!(pub);
    let msg = quote!(<#self_ty as ::canopy::service::Service>::Msg);

    quote! {
        #[doc = #client_doc]
        #client_vis struct #client #enum_generics #enum_where {
            endpoint: ::canopy::service::Endpoint<#msg>,
            _service: ::core::marker::PhantomData<fn() -> #self_ty>,
        }

        const _: () = {
            #[allow(non_camel_case_types)]
            #[doc(hidden)]
            pub enum __CanopyMsg #enum_generics #enum_where {
                #(#variants,)*
                // The chaos monkey's fault (uninhabited without canopy's `chaos` feature).
                __CanopyFault(
                    ::canopy::service::__private::Fault,
                    ::core::marker::PhantomData<fn() -> (#(#type_params,)*)>,
                ),
            }

            impl #impl_generics ::canopy::service::Service for #self_ty #where_clause {
                type Msg = __CanopyMsg #ty_generics;
                type Args = #args_ty;
                type Client = #client #ty_generics;
                const NAME: &'static str = #name;

                async fn __init(
                    __canopy_args: Self::Args,
                    __canopy_ctx: &::canopy::service::Ctx<Self>,
                ) -> ::core::result::Result<Self, ::canopy::BoxError> {
                    let _ = __canopy_ctx;
                    #unpack
                    #init_body
                }

                #[allow(unreachable_code)]
                async fn __handle(
                    &mut self,
                    __canopy_msg: Self::Msg,
                    __canopy_ctx: &::canopy::service::Ctx<Self>,
                ) -> ::core::result::Result<(), ::canopy::BoxError> {
                    let _ = __canopy_ctx;
                    match __canopy_msg {
                        #(#arms)*
                        __CanopyMsg::__CanopyFault(fault, _) => {
                            ::canopy::service::__private::deliver(fault, __canopy_ctx).await?;
                        }
                    }
                    ::core::result::Result::Ok(())
                }

                #on_stop

                fn __fault(fault: ::canopy::service::__private::Fault) -> ::core::option::Option<Self::Msg> {
                    ::core::option::Option::Some(__CanopyMsg::__CanopyFault(fault, ::core::marker::PhantomData))
                }

                fn __client(endpoint: ::canopy::service::Endpoint<Self::Msg>) -> Self::Client {
                    #client { endpoint, _service: ::core::marker::PhantomData }
                }

                fn defaults() -> ::canopy::service::ChildDefaults {
                    #defaults
                }
            }

            impl #impl_generics ::canopy::service::Child for #self_ty #where_clause {
                type Args = <Self as ::canopy::service::Service>::Args;
                type Client = #client #ty_generics;
                const RESTART: ::canopy::Restart = #restart;

                fn defaults() -> ::canopy::service::ChildDefaults {
                    <Self as ::canopy::service::Service>::defaults()
                }

                fn spawn(
                    sup: ::canopy::ractor::ActorCell,
                    args: Self::Args,
                ) -> ::canopy::service::__private::BoxFuture<
                    'static,
                    ::core::result::Result<::canopy::Start, ::canopy::BoxError>,
                > {
                    ::canopy::service::ServiceActor::<Self>::spawn_child(sup, args)
                }

                fn client_at(
                    sup_path: &str,
                    id: &str,
                ) -> ::core::result::Result<Self::Client, ::canopy::ChildError> {
                    ::canopy::service::handle_at(sup_path, id).map(#client::from_handle)
                }

                fn dynamic_client(
                    sup: &::canopy::DynamicRef<Self::Args>,
                    child: &::canopy::ractor::ActorCell,
                ) -> ::core::result::Result<Self::Client, ::canopy::ChildError> {
                    sup.handle(child).map(#client::from_handle)
                }
            }

            impl #impl_generics #self_ty #where_clause {
                /// This service's child spec under `id`, with the defaults written in its
                /// `#[canopy::service(..)]` attribute. Generated by `#[canopy::service]`.
                pub fn child_spec(
                    id: impl ::core::convert::Into<::std::string::String>,
                    args: <Self as ::canopy::service::Service>::Args,
                ) -> ::canopy::ChildSpec {
                    <Self as ::canopy::service::Child>::child_spec(id, args)
                }
            }

            impl #impl_generics ::core::clone::Clone for #client #ty_generics #where_clause {
                fn clone(&self) -> Self {
                    #client {
                        endpoint: ::core::clone::Clone::clone(&self.endpoint),
                        _service: ::core::marker::PhantomData,
                    }
                }
            }

            impl #impl_generics ::core::fmt::Debug for #client #ty_generics #where_clause {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_tuple(::core::stringify!(#client)).field(&self.endpoint).finish()
                }
            }

            #[allow(dead_code)]
            impl #impl_generics #client #ty_generics #where_clause {
                /// A client to child `id` of `sup`; it follows the child across restarts.
                pub fn new(
                    sup: &::canopy::SupervisorRef,
                    id: &str,
                ) -> ::core::result::Result<Self, ::canopy::ChildError> {
                    <#self_ty as ::canopy::service::Child>::client(sup, id)
                }

                /// A client that sends through `handle`.
                pub fn from_handle(handle: ::canopy::handle::ChildHandle<#msg>) -> Self {
                    #client {
                        endpoint: ::canopy::service::Endpoint::from_handle(handle),
                        _service: ::core::marker::PhantomData,
                    }
                }

                /// A client to this one actor (it does not follow restarts).
                pub fn from_actor(actor: ::canopy::ractor::ActorRef<#msg>) -> Self {
                    #client {
                        endpoint: ::canopy::service::Endpoint::from_actor(actor),
                        _service: ::core::marker::PhantomData,
                    }
                }

                /// The same client with `timeout` for every call instead of each method's own
                /// (`Duration::MAX`: no bound).
                pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                    #client {
                        endpoint: ::core::clone::Clone::clone(&self.endpoint).with_timeout(timeout),
                        _service: ::core::marker::PhantomData,
                    }
                }

                /// What this client sends through.
                pub fn endpoint(&self) -> &::canopy::service::Endpoint<#msg> {
                    &self.endpoint
                }

                /// The incarnation that would get a message now, if it runs.
                pub fn current(&self) -> ::core::option::Option<::canopy::ractor::ActorRef<#msg>> {
                    self.endpoint.current()
                }

                #(#client_methods)*
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::visit::Visit;

    /// The doc lines of every method named `name` in an `impl` of a type named `ty`, in the order
    /// they appear in the expansion.
    struct DocsOf<'a> {
        ty: &'a str,
        name: &'a str,
        found: Vec<Vec<String>>,
    }

    impl<'ast> Visit<'ast> for DocsOf<'_> {
        fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
            let named = matches!(&*item.self_ty, syn::Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == self.ty));
            if named && item.trait_.is_none() {
                for inner in &item.items {
                    if let syn::ImplItem::Fn(f) = inner {
                        if f.sig.ident == self.name {
                            self.found.push(doc_lines(&f.attrs));
                        }
                    }
                }
            }
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn doc_lines(attrs: &[syn::Attribute]) -> Vec<String> {
        attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .filter_map(|a| match &a.meta {
                syn::Meta::NameValue(nv) => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn docs_of(expansion: &proc_macro2::TokenStream, ty: &str, name: &str) -> Vec<Vec<String>> {
        let file: syn::File = syn::parse2(expansion.clone()).expect("the expansion parses");
        let mut visitor = DocsOf {
            ty,
            name,
            found: Vec::new(),
        };
        visitor.visit_file(&file);
        visitor.found
    }

    /// Doc comments on a service's methods reach the client's methods of the same name, first and
    /// unchanged, for a call, a fallible call and a cast; an undocumented method gets none of
    /// another's.
    #[test]
    fn method_docs_reach_the_client() {
        let expansion = super::expand(
            quote!(),
            quote! {
                impl Counter {
                    fn init() -> Self { Counter { n: 0 } }
                    /// The count so far.
                    ///
                    /// Never negative.
                    pub fn get(&self) -> u64 { self.n }
                    /// Adds `k`.
                    pub fn add(&mut self, k: u64) { self.n += k; }
                    #[doc = "Parses `s`."]
                    pub fn parse(&mut self, s: String) -> Result<u64, String> { s.parse().map_err(|_| s) }
                    pub fn reset(&mut self) { self.n = 0; }
                }
            },
        );
        let client = |name| docs_of(&expansion, "CounterClient", name);
        for (name, want) in [
            ("get", &[" The count so far.", "", " Never negative."][..]),
            ("add", &[" Adds `k`."][..]),
            ("parse", &["Parses `s`."][..]),
        ] {
            let found = client(name);
            assert_eq!(found.len(), 1, "one client method `{name}`: {found:?}");
            assert!(
                found[0].starts_with(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                "client `{name}` begins with the service method's docs {want:?}, has {:?}",
                found[0]
            );
        }
        let reset = client("reset");
        assert_eq!(reset.len(), 1);
        assert!(
            reset[0]
                .iter()
                .all(|line| !line.contains("count") && !line.contains("Adds")),
            "an undocumented method borrows no other's docs: {:?}",
            reset[0]
        );
        // The service's own method keeps its docs too.
        assert_eq!(
            docs_of(&expansion, "Counter", "get"),
            [vec![
                " The count so far.".to_string(),
                String::new(),
                " Never negative.".to_string()
            ]]
        );
    }
}
