struct Store;

#[canopy::service]
impl Store {
    fn init() -> Self {
        Store
    }

    fn put(&mut self, key: &str, value: Vec<&str>) {
        let _ = (key, value);
    }
}

fn main() {}
