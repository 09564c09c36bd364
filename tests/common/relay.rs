//! A TCP relay on 127.0.0.1 in front of a local server, for outages on demand.

/// A TCP relay that can be cut and restored, standing for an RPC node that restarts.
pub struct Relay {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    handle: Option<tokio::task::JoinHandle<()>>,
    target: u16,
}

impl Relay {
    /// Relays 127.0.0.1:<port> to 127.0.0.1:`target`.
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            handle: None,
            target,
        };
        relay.handle = Some(tokio::spawn(Self::serve(listener, target)));
        relay
    }

    async fn serve(listener: tokio::net::TcpListener, target: u16) {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    /// Drops the listener and every connection: the "RPC node" is down.
    pub fn cut(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.handle = Some(tokio::spawn(Self::serve(listener, self.target)));
    }
}
