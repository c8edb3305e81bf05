//! Programs the macros must accept: generic services, sync and async methods, the context in
//! every position, nested supervisor structs, and code that names nothing but canopy. They are
//! compiled with the rest of the tests rather than by trybuild: a trybuild `pass` case makes it
//! build (not only check) every dev-dependency again in a target directory of its own, minutes
//! on a 2-core machine, for what a plain compile already proves.

/// Generic services: the parameters, their bounds and the where clause reach the client.
mod generics {
    use std::collections::HashMap;
    use std::hash::Hash;

    struct Cache<K, V> {
        map: HashMap<K, V>,
    }

    #[canopy::service(restart = transient)]
    impl<K: Eq + Hash + Clone + Send + Sync + 'static, V> Cache<K, V>
    where
        V: Clone + Send + Sync + 'static,
    {
        fn init(capacity: usize) -> Self {
            Cache {
                map: HashMap::with_capacity(capacity),
            }
        }

        fn put(&mut self, key: K, value: V) {
            self.map.insert(key, value);
        }

        fn get(&self, key: K) -> Option<V> {
            self.map.get(&key).cloned()
        }

        fn copy(&self) -> Self {
            Cache {
                map: self.map.clone(),
            }
        }
    }

    fn takes_client<K, V>(_: Option<CacheClient<K, V>>)
    where
        K: Eq + Hash + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
    }

    #[test]
    fn compiles_and_runs() {
        let spec = Cache::<String, u64>::child_spec("cache", 16);
        assert_eq!(spec.get_restart(), canopy::Restart::Transient);
        takes_client::<String, Vec<u8>>(None);
    }
}

/// Sync and async methods, a fallible async constructor, the context by value and by reference
/// in any position, a stop hook with the context, #[skip] and plain associated functions.
mod sync_async_ctx {
    use canopy::service::Ctx;
    use canopy::ExitReason;

    struct Worker {
        done: u32,
    }

    #[canopy::service(timeout = "2s", client = Handle)]
    impl Worker {
        async fn init(context: Ctx<Self>, start: u32) -> Result<Self, std::io::Error> {
            let _ = context.cell();
            Ok(Worker { done: start })
        }

        fn work(&mut self) {
            self.done += 1;
        }

        async fn work_later(&mut self, ctx: &Ctx<Self>, times: u32) {
            let me = ctx.client();
            ctx.spawn(async move {
                for _ in 0..times {
                    let _ = me.work().await;
                }
            });
        }

        #[call(timeout = infinity)]
        async fn done(&self) -> u32 {
            self.done
        }

        #[skip]
        fn not_a_message(&self) -> u32 {
            self.done
        }

        fn helper(x: u32) -> u32 {
            x + 1
        }

        #[on_stop]
        async fn stopped(&mut self, c: &Ctx<Self>, reason: ExitReason) {
            let _ = (c.actor_ref(), reason, self.not_a_message());
        }
    }

    #[test]
    fn compiles_and_runs() {
        let _spec = Worker::child_spec("w", 1);
        let _: Option<Handle> = None;
        assert_eq!(Worker::helper(1), 2);
    }
}

/// Supervisor structs nest as fields; services, hand-written actors and dynamic supervisors mix.
mod nested_supervisors {
    use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
    use canopy::Dynamic;

    struct Db;

    #[canopy::service]
    impl Db {
        fn init(_url: String) -> Self {
            Db
        }
    }

    #[derive(Default, canopy::Child)]
    #[child(shutdown = "1s")]
    struct Raw;

    impl Actor for Raw {
        type Msg = u8;
        type State = ();
        type Arguments = u8;
        async fn pre_start(&self, _: ActorRef<u8>, _: u8) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    struct Session;

    #[canopy::service(restart = temporary)]
    impl Session {
        fn init(_user: String) -> Self {
            Session
        }
    }

    #[derive(canopy::Supervisor)]
    #[supervisor(strategy = one_for_all, intensity = 1, period = "1s")]
    struct Inner {
        raw: Raw,
        sessions: Dynamic<Session>,
    }

    #[derive(canopy::Supervisor)]
    #[supervisor(name = "app", backoff(min = "10ms", max = "1s", jitter = 0.1))]
    #[child(restart = transient)]
    struct Outer {
        db: Db,
        #[child(shutdown = infinity)]
        inner: Inner,
    }

    fn handles_type(h: &OuterHandles) -> &canopy::service::DynamicClient<Session> {
        &h.inner.sessions
    }

    #[test]
    fn compiles_and_runs() {
        let spec = Outer::spec(OuterArgs {
            db: "postgres://".into(),
            inner: InnerArgs { raw: 1 },
        });
        assert!(spec.validate().is_ok());
        assert_eq!(spec.get_children().len(), 2);
        let as_child = Outer::child_spec(
            "outer",
            OuterArgs {
                db: String::new(),
                inner: InnerArgs { raw: 2 },
            },
        );
        assert_eq!(as_child.get_restart(), canopy::Restart::Transient);
        let _ = handles_type;
    }
}

/// Nothing but canopy is named: no ractor, tokio or futures import is needed by generated code.
mod only_canopy {
    #![no_implicit_prelude]
    extern crate canopy;
    extern crate std;

    struct Counter {
        n: u64,
    }

    #[canopy::service]
    impl Counter {
        fn init() -> Self {
            Counter { n: 0 }
        }

        fn add(&mut self, k: u64) {
            self.n += k;
        }

        fn get(&self) -> ::std::result::Result<u64, ::std::string::String> {
            ::std::result::Result::Ok(self.n)
        }
    }

    #[derive(canopy::Supervisor)]
    struct Tree {
        counter: Counter,
    }

    #[test]
    fn compiles_and_runs() {
        let _ = Tree::spec(TreeArgs { counter: () });
    }
}
