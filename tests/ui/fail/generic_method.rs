struct Store;

#[canopy::service]
impl Store {
    fn init() -> Self {
        Store
    }

    fn put<T: Send + 'static>(&mut self, item: T) {
        let _ = item;
    }
}

fn main() {}
