// A corporate network on loopback for integration tests: a real forward proxy (HTTP
// CONNECT tunnels and absolute-form requests, optional Basic credentials, counting
// what it carried), a TLS front that puts klingq-sim behind a certificate of a private
// test CA, and that CA itself, made with the openssl command at test time.
//
// Both servers are threads with blocking sockets on 127.0.0.1 port 0, independent of
// lib/http on purpose: the client under test must not be checked against itself.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace klingq::testing {

// A CA and one server certificate it signed, as PEM files in `dir`.
struct TestCa {
  // Makes a CA named `ca_name` and a certificate for 127.0.0.1 and localhost (SANs).
  static TestCa make(const std::string& dir, const std::string& ca_name = "klingq test CA");
  std::string ca_file;     // the CA certificate (what a client trusts)
  std::string cert_file;   // the server's certificate
  std::string key_file;    // the server's private key
};

// Servers that accept on 127.0.0.1:0 in a thread and handle each connection in its own
// thread; the destructor closes every socket and joins every thread.
class LoopbackServer {
 public:
  LoopbackServer();
  virtual ~LoopbackServer();
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;
  int port() const { return port_; }

 protected:
  void start();  // call at the end of the derived constructor
  void stop();   // call first in the derived destructor
  virtual void serve(int client_fd) = 0;
  // Both sockets are closed by stop(), which unblocks any thread reading them.
  void track(int fd);
  void untrack(int fd);

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
};

class ForwardProxy : public LoopbackServer {
 public:
  // `credentials` "user:password": every request without them gets a 407. Empty: open.
  explicit ForwardProxy(std::string credentials = "");
  ~ForwardProxy() override;

  std::string url() const;  // http://127.0.0.1:PORT
  int tunnels() const { return tunnels_; }          // CONNECTs answered 200
  int forwarded() const { return forwarded_; }      // absolute-form requests forwarded
  int refused() const { return refused_; }          // 407s sent
  std::vector<std::string> targets();               // "CONNECT host:port" / "GET http://..."
  std::vector<std::string> authorizations();        // Proxy-Authorization values received

 private:
  void serve(int client_fd) override;
  std::string expected_authorization_;
  std::atomic<int> tunnels_{0};
  std::atomic<int> forwarded_{0};
  std::atomic<int> refused_{0};
  std::mutex seen_mutex_;
  std::vector<std::string> targets_;
  std::vector<std::string> authorizations_;
};

// TLS on 127.0.0.1:PORT with the given certificate, each connection relayed in plain
// TCP to `backend` ("127.0.0.1:PORT"): klingq-sim as an https origin.
class TlsFront : public LoopbackServer {
 public:
  TlsFront(const TestCa& ca, std::string backend);
  ~TlsFront() override;
  std::string url() const;  // https://127.0.0.1:PORT
  int handshakes() const { return handshakes_; }       // completed
  int failed_handshakes() const { return failed_; }    // e.g. the client refused our certificate

 private:
  void serve(int client_fd) override;
  struct Context;
  std::unique_ptr<Context> context_;
  std::string backend_host_;
  std::string backend_port_;
  std::atomic<int> handshakes_{0};
  std::atomic<int> failed_{0};
};

}  // namespace klingq::testing
