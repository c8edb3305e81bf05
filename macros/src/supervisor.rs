//! `#[derive(canopy::Supervisor)]`: a supervisor declared as a struct, one field per child.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, Type};

use crate::attrs::{self, ChildSettings, Errors};

struct Field {
    ident: Ident,
    ty: Type,
    id: String,
    settings: ChildSettings,
    /// Arguments fixed in the attribute (`args = expr`), so none in the arguments struct.
    args: Option<Expr>,
    dynamic: bool,
}

fn is_dynamic(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Dynamic"),
        _ => false,
    }
}

pub fn expand(input: TokenStream) -> TokenStream {
    let item: DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();

    // The struct's own attributes.
    let mut strategy = quote!(::canopy::Strategy::OneForOne);
    let mut intensity = quote!(::canopy::spec::DEFAULT_INTENSITY);
    let mut period = quote!(::canopy::spec::DEFAULT_PERIOD);
    let mut auto_shutdown = quote!(::canopy::AutoShutdown::Never);
    let mut auto_never = true;
    let mut name = None;
    let mut backoff = None;
    for attr in item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("supervisor"))
    {
        let syn::Meta::List(list) = &attr.meta else {
            errors.at(attr, "write `#[supervisor(strategy = one_for_one, ..)]`");
            continue;
        };
        for meta in attrs::parse_list(list.tokens.clone(), &mut errors) {
            let key = attrs::key_of(&meta);
            if key == "backoff" {
                backoff = attrs::backoff_value(&meta, &mut errors);
                continue;
            }
            let Some(value) = attrs::value_of(&meta, &mut errors, "key = value") else {
                continue;
            };
            let word = match value {
                Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
                _ => None,
            };
            match key.as_str() {
                "strategy" => match word.as_deref() {
                    Some("one_for_one") => strategy = quote!(::canopy::Strategy::OneForOne),
                    Some("one_for_all") => strategy = quote!(::canopy::Strategy::OneForAll),
                    Some("rest_for_one") => strategy = quote!(::canopy::Strategy::RestForOne),
                    _ => errors.at(
                        value,
                        "not a strategy: expected `one_for_one`, `one_for_all` or `rest_for_one`",
                    ),
                },
                "intensity" => {
                    if let Some(n) = attrs::int_value::<u32>(value, "intensity", &mut errors) {
                        intensity = quote!(#n);
                    }
                }
                "period" => match value {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => match attrs::parse_duration_lit(s, &mut errors) {
                        Some((0, 0)) => errors.at(value, "the restart period must be longer than zero"),
                        Some(d) => period = attrs::duration_tokens(d),
                        None => {}
                    },
                    _ => errors.at(value, "`period` takes a duration in quotes, such as \"5s\""),
                },
                "auto_shutdown" => match word.as_deref() {
                    Some("never") => auto_shutdown = quote!(::canopy::AutoShutdown::Never),
                    Some("any_significant") => {
                        auto_never = false;
                        auto_shutdown = quote!(::canopy::AutoShutdown::AnySignificant)
                    }
                    Some("all_significant") => {
                        auto_never = false;
                        auto_shutdown = quote!(::canopy::AutoShutdown::AllSignificant)
                    }
                    _ => errors.at(
                        value,
                        "not an auto_shutdown mode: expected `never`, `any_significant` or `all_significant`",
                    ),
                },
                "name" => match value {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) if !s.value().is_empty() && !s.value().contains('/') => {
                        let s = s.value();
                        name = Some(quote!(.name(#s)));
                    }
                    _ => errors.at(
                        value,
                        "`name` takes the supervisor's name in paths, in quotes and without `/`, such as `name = \"app\"`",
                    ),
                },
                _ => errors.at(
                    meta.path(),
                    format!(
                        "unknown key `{key}` in #[supervisor]: expected `strategy`, `intensity`, \
                         `period`, `auto_shutdown`, `name` or `backoff`"
                    ),
                ),
            }
        }
    }
    let own = crate::child::settings(
        &item.attrs,
        false,
        &mut |_, _| false,
        "`restart`, `shutdown`, `significant` or `backoff` (the supervisor's defaults as a child)",
        &mut errors,
    );
    own.check_significant(true, &mut errors);

    if !item.generics.params.is_empty() {
        errors.at(&item.generics, "a supervisor struct cannot be generic");
    }
    let fields = match &item.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(u) => {
                errors.at(
                    u,
                    "a supervisor struct names its children: use named fields (`db: Db`)",
                );
                Vec::new()
            }
        },
        Data::Enum(e) => {
            errors.at(
                e.enum_token,
                "#[derive(Supervisor)] goes on a struct with one field per child",
            );
            Vec::new()
        }
        Data::Union(u) => {
            errors.at(
                u.union_token,
                "#[derive(Supervisor)] goes on a struct with one field per child",
            );
            Vec::new()
        }
    };

    let mut children = Vec::new();
    let mut ids: HashMap<String, Span> = HashMap::new();
    for f in fields {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        let mut id = ident.to_string().trim_start_matches("r#").to_string();
        let mut id_span = ident.span();
        let mut args = None;
        let settings = crate::child::settings(
            &f.attrs,
            false,
            &mut |meta, errors| match attrs::key_of(meta).as_str() {
                "id" => {
                    match attrs::value_of(meta, errors, "id = \"listener\"") {
                        Some(Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        })) if !s.value().is_empty() && !s.value().contains('/') => {
                            id = s.value();
                            id_span = s.span();
                        }
                        Some(v) => errors.at(
                            v,
                            "`id` takes the child's id, in quotes, not empty and without `/`, such as `id = \"listener\"`",
                        ),
                        None => {}
                    }
                    true
                }
                "args" => {
                    if let Some(v) = attrs::value_of(meta, errors, "args = <expression>") {
                        args = Some(v.clone());
                    }
                    true
                }
                _ => false,
            },
            "`id`, `args`, `restart`, `shutdown`, `significant` or `backoff`",
            &mut errors,
        );
        if settings.restart.is_some() {
            settings.check_significant(false, &mut errors);
        }
        if let Some(span) = settings.significant {
            if auto_never {
                errors.push(syn::Error::new(
                    span,
                    "a significant child needs `#[supervisor(auto_shutdown = any_significant)]` \
                     or `all_significant` on the struct (with `never`, OTP rejects it)",
                ));
            }
        }
        if let Some(first) = ids.get(&id) {
            let mut e = syn::Error::new(
                id_span,
                format!("duplicate child id `{id}`: ids are unique among a supervisor's children"),
            );
            e.combine(syn::Error::new(
                *first,
                format!("`{id}` is first used here"),
            ));
            errors.push(e);
        } else {
            ids.insert(id.clone(), id_span);
        }
        let dynamic = is_dynamic(&f.ty);
        if dynamic && args.is_some() {
            errors.at(&f.ty, "a `Dynamic<T>` child takes no arguments: its children get theirs from `start_child`");
        }
        children.push(Field {
            ident,
            ty: f.ty.clone(),
            id,
            settings,
            args,
            dynamic,
        });
    }

    if !errors.is_empty() {
        return errors.to_compile_errors();
    }

    let ident = &item.ident;
    let vis = &item.vis;
    let args_ident = format_ident!("{}Args", ident);
    let handles_ident = format_ident!("{}Handles", ident);
    let child = quote!(::canopy::service::Child);

    let arg_fields: Vec<&Field> = children
        .iter()
        .filter(|c| c.args.is_none() && !c.dynamic)
        .collect();
    let arg_decls = arg_fields.iter().map(|c| {
        let (f, ty) = (&c.ident, &c.ty);
        let doc = format!("The start arguments of child `{}`.", c.id);
        quote_spanned!(ty.span()=> #[doc = #doc] pub #f: <#ty as #child>::Args,)
    });
    let arg_names = arg_fields.iter().map(|c| &c.ident);
    let asserts = children.iter().map(|c| {
        let ty = &c.ty;
        quote_spanned!(ty.span()=> ::canopy::service::__private::assert_child::<#ty>();)
    });
    let field_idents: Vec<&Ident> = children.iter().map(|c| &c.ident).collect();
    let significant_checks = children.iter().filter_map(|c| {
        let span = c.settings.significant?;
        if c.settings.restart.is_some() {
            return None;
        }
        let ty = &c.ty;
        Some(quote_spanned!(span=>
            const _: () = ::canopy::service::__private::check_significant(<#ty as #child>::RESTART);
        ))
    });
    let specs = children.iter().map(|c| {
        let (f, ty, id) = (&c.ident, &c.ty, &c.id);
        let calls = c.settings.spec_calls();
        let args = match (&c.args, c.dynamic) {
            (Some(expr), _) => quote!(#expr),
            (None, true) => quote!(()),
            (None, false) => quote!(#f),
        };
        quote_spanned!(ty.span()=> .child(<#ty as #child>::child_spec(#id, #args) #calls))
    });
    let handle_decls = children.iter().map(|c| {
        let (f, ty) = (&c.ident, &c.ty);
        let doc = format!("The client of child `{}`.", c.id);
        quote_spanned!(ty.span()=> #[doc = #doc] pub #f: <#ty as #child>::Client,)
    });
    let handle_inits = children.iter().map(|c| {
        let (f, ty, id) = (&c.ident, &c.ty, &c.id);
        quote!(#f: <#ty as #child>::client_at(path, #id)?,)
    });
    let own_defaults = own.defaults_tokens(quote!(::canopy::service::ChildDefaults::SUPERVISOR));
    let own_restart = own
        .restart_tokens()
        .unwrap_or_else(|| quote!(::canopy::Restart::Permanent));
    let own_calls = own.spec_calls();
    let args_doc = format!(
        "The start arguments of [`{ident}`]'s children: one field per child that takes arguments. \
         Generated by `#[derive(canopy::Supervisor)]`."
    );
    let handles_doc = format!(
        "The typed clients of [`{ident}`]'s children, one field per child; they keep working \
         across restarts. Generated by `#[derive(canopy::Supervisor)]`."
    );
    let backoff = backoff.map(|b| quote!(.backoff(#b)));

    quote! {
        #[doc = #args_doc]
        #[derive(Clone)]
        #vis struct #args_ident {
            #(#arg_decls)*
        }

        #[doc = #handles_doc]
        // A tree whose code uses some of its children's clients only is not dead code.
        #[allow(dead_code)]
        #[derive(Clone, Debug)]
        #vis struct #handles_ident {
            #(#handle_decls)*
            __canopy_path: ::std::string::String,
        }

        #(#significant_checks)*

        const _: () = {
            // The struct is a declaration, never built: reading its fields here (an item that
            // allows dead code is a root of the lint's analysis) keeps `field is never read` away.
            #[allow(dead_code)]
            fn __canopy_assert_children(s: &#ident) {
                #(#asserts)*
                let _ = (#(&s.#field_idents,)*);
            }

            impl #ident {
                /// The supervisor spec: the children in field order, with the struct's strategy
                /// and restart budget. Generated by `#[derive(canopy::Supervisor)]`.
                pub fn spec(args: #args_ident) -> ::canopy::SupervisorSpec {
                    let #args_ident { #(#arg_names,)* } = args;
                    ::canopy::SupervisorSpec::new(#strategy)
                        .restart_intensity(#intensity, #period)
                        .auto_shutdown(#auto_shutdown)
                        #name
                        #backoff
                        #(#specs)*
                }

                /// Starts the tree (top-level, unlinked) and returns its children's clients.
                pub async fn start(
                    args: #args_ident,
                ) -> ::core::result::Result<#handles_ident, ::canopy::StartError> {
                    let sup = ::canopy::Supervisor::start(Self::spec(args)).await?;
                    Self::handles(&sup)
                        .map_err(|e| ::canopy::StartError::Init(::std::string::ToString::to_string(&e)))
                }

                /// The clients of the children of `sup`, a running supervisor of this struct's
                /// spec.
                pub fn handles(
                    sup: &::canopy::SupervisorRef,
                ) -> ::core::result::Result<#handles_ident, ::canopy::ChildError> {
                    let path = sup.path().ok_or(::canopy::ChildError::SupervisorDown)?;
                    Self::handles_at(&path)
                }

                fn handles_at(
                    path: &str,
                ) -> ::core::result::Result<#handles_ident, ::canopy::ChildError> {
                    ::core::result::Result::Ok(#handles_ident {
                        #(#handle_inits)*
                        __canopy_path: ::std::borrow::ToOwned::to_owned(path),
                    })
                }

                /// This supervisor as a child `id` of another (named `id` in paths).
                pub fn child_spec(
                    id: impl ::core::convert::Into<::std::string::String>,
                    args: #args_ident,
                ) -> ::canopy::ChildSpec {
                    <Self as #child>::child_spec(id, args)
                }
            }

            impl #child for #ident {
                type Args = #args_ident;
                type Client = #handles_ident;
                const RESTART: ::canopy::Restart = #own_restart;

                fn defaults() -> ::canopy::service::ChildDefaults {
                    #own_defaults
                }

                fn spawn(
                    sup: ::canopy::ractor::ActorCell,
                    args: #args_ident,
                ) -> ::canopy::service::__private::BoxFuture<
                    'static,
                    ::core::result::Result<::canopy::Start, ::canopy::BoxError>,
                > {
                    ::canopy::service::__private::FutureExt::boxed(async move {
                        let sup = ::canopy::Supervisor::start_linked(Self::spec(args), sup).await?;
                        ::core::result::Result::Ok(<::canopy::Start as ::core::convert::From<_>>::from(sup.cell()))
                    })
                }

                fn child_spec(
                    id: impl ::core::convert::Into<::std::string::String>,
                    args: #args_ident,
                ) -> ::canopy::ChildSpec {
                    ::canopy::ChildSpec::supervisor(id, Self::spec(args)) #own_calls
                }

                fn client_at(
                    sup_path: &str,
                    id: &str,
                ) -> ::core::result::Result<#handles_ident, ::canopy::ChildError> {
                    Self::handles_at(&::std::format!("{sup_path}/{id}"))
                }

                fn dynamic_client(
                    _sup: &::canopy::DynamicRef<#args_ident>,
                    child: &::canopy::ractor::ActorCell,
                ) -> ::core::result::Result<#handles_ident, ::canopy::ChildError> {
                    let path = ::canopy::introspect::path_of(child)
                        .ok_or(::canopy::ChildError::SupervisorDown)?;
                    Self::handles_at(&path)
                }
            }

            impl #handles_ident {
                /// The supervisor's current incarnation, while it runs.
                pub fn supervisor(&self) -> ::core::option::Option<::canopy::SupervisorRef> {
                    ::canopy::service::supervisor_at(&self.__canopy_path)
                }

                /// The supervisor's path in the tree (`/app/web`).
                pub fn path(&self) -> &str {
                    &self.__canopy_path
                }

                /// Stops the supervisor's current incarnation and its children in reverse start
                /// order; returns once it is down (at once if it is not running).
                pub async fn shutdown(&self) {
                    if let ::core::option::Option::Some(sup) = self.supervisor() {
                        sup.shutdown().await;
                    }
                }
            }
        };
    }
}
