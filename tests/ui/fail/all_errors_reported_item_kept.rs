// Three mistakes in one impl: each is reported, and nothing else is, because the impl block is
// emitted as written (`Counter::helper` below still resolves) and the client is generated for the
// methods without a mistake (`CounterClient::get` below resolves too).
struct Counter {
    n: u64,
}

#[canopy::service(restart = never)]
impl Counter {
    fn init() -> Self {
        Counter { n: 0 }
    }

    fn add(self, k: u64) {
        let _ = k;
    }

    fn label(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.n)
    }

    fn helper() -> u64 {
        41
    }

    fn get(&self) -> u64 {
        self.n
    }
}

async fn ask(counter: &CounterClient) -> u64 {
    counter.get().await.unwrap_or(0)
}

fn main() {
    let _ = Counter::helper() + 1;
    let _ = ask;
}
