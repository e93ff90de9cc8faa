// Test helpers: a Server on its own loop thread, and a raw blocking client.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "http/server.h"

namespace ingestd::http::test {

using namespace std::chrono_literals;

// Polls `pred` until it holds or `timeout` passes (awaits a condition).
inline bool wait_until(const std::function<bool()> &pred,
                       std::chrono::milliseconds timeout = 5000ms) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

// A Server listening on 127.0.0.1:0, running on its own uv loop thread.
class LoopServer {
 public:
  LoopServer(ServerLimits limits, Handler handler, ServerObserver observer = {}) {
    std::signal(SIGPIPE, SIG_IGN);  // the process contract of server.h
    std::promise<int> ready;
    auto started = ready.get_future();
    thread_ = std::thread([&] {
      uv_loop_init(&loop_);
      uv_async_init(&loop_, &async_,
                    [](uv_async_t *a) { static_cast<LoopServer *>(a->data)->drain(); });
      async_.data = this;
      server_ = std::make_unique<Server>(&loop_, std::move(limits), std::move(handler),
                                         std::move(observer));
      int rc = server_->listen("127.0.0.1:0", false);
      ready.set_value(rc == 0 ? server_->local_port() : rc);
      uv_run(&loop_, UV_RUN_DEFAULT);
    });
    port_ = started.get();
  }

  ~LoopServer() { stop(); }

  int port() const { return port_; }
  uv_loop_t *loop() { return &loop_; }
  Server &server() { return *server_; }

  // Runs fn on the loop thread and waits for it.
  void run(std::function<void()> fn) {
    std::promise<void> done;
    auto f = done.get_future();
    {
      std::lock_guard lock(mu_);
      tasks_.push_back([&] {
        fn();
        done.set_value();
      });
    }
    uv_async_send(&async_);
    f.wait();
  }

  size_t connection_count() {
    size_t n = 0;
    run([&] { n = server_->connection_count(); });
    return n;
  }

  // Starts the graceful close; `done` runs on the loop thread when it completed.
  void close(uint64_t deadline_ms, std::function<void()> done = {}) {
    if (closing_) return;
    closing_ = true;
    run([this, deadline_ms, done = std::move(done)]() mutable {
      server_->close(deadline_ms, [this, done = std::move(done)] {
        if (done) done();
        uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
      });
    });
  }

  // Closes, joins the loop thread, destroys the Server and checks that no
  // handle was left open.
  void stop(uint64_t deadline_ms = 1000) {
    if (!thread_.joinable()) return;
    close(deadline_ms);
    thread_.join();
    server_.reset();
    loop_close_rc_ = uv_loop_close(&loop_);
  }
  int loop_close_rc() const { return loop_close_rc_; }

 private:
  void drain() {
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard lock(mu_);
      tasks.swap(tasks_);
    }
    for (auto &t : tasks)
      t();
  }

  uv_loop_t loop_;
  uv_async_t async_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
  int port_ = 0;
  bool closing_ = false;
  int loop_close_rc_ = -1;
};

struct HttpResponse {
  bool ok = false;
  int status = 0;
  std::string status_line;
  std::string head;  // header lines, "\r\n" separated, without the status line
  std::string body;

  std::string header(std::string_view name) const {
    size_t pos = 0;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string_view line(head.data() + pos, end - pos);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos && colon == name.size() &&
          strncasecmp(line.data(), name.data(), name.size()) == 0) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ')
          v.remove_prefix(1);
        return std::string(v);
      }
      pos = end + 2;
    }
    return "";
  }
  bool has_header(std::string_view name) const {
    std::string needle = "\r\n" + std::string(name) + ":";
    std::string h = "\r\n" + head;
    return strcasestr(h.c_str(), needle.c_str()) != nullptr;
  }
};

class Client {
 public:
  explicit Client(int port, int timeout_s = 5) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_s, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0;
  }
  ~Client() { close(); }
  Client(const Client &) = delete;

  bool connected() const { return connected_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      last_recv_ = n;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  // True when data is readable within `ms`.
  bool readable(int ms) {
    if (!buf_.empty()) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
  }

  // Reads the bytes of an interim or header-only block up to "\r\n\r\n".
  std::string read_head() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return "";
    }
    std::string head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    return head;
  }

  HttpResponse read_response(bool head_request = false) {
    HttpResponse r;
    std::string head = read_head();
    if (head.empty()) return r;
    size_t eol = head.find("\r\n");
    r.status_line = head.substr(0, eol);
    r.head = head.substr(eol + 2, head.size() - eol - 6);
    if (r.status_line.size() >= 12) r.status = std::atoi(r.status_line.c_str() + 9);
    size_t length = 0;
    std::string cl = r.header("Content-Length");
    if (!cl.empty()) length = std::stoul(cl);
    if (head_request) length = 0;
    while (buf_.size() < length) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    r.ok = true;
    return r;
  }

  // True when the server closed the connection (EOF or reset) with no more
  // bytes; false on timeout or unexpected data.
  bool wait_eof() {
    while (fill()) {
    }
    return buf_.empty() && (last_recv_ == 0 || errno == ECONNRESET);
  }
  // Like wait_eof, but only an orderly FIN counts, not a reset.
  bool wait_clean_eof() {
    while (fill()) {
    }
    return buf_.empty() && last_recv_ == 0;
  }
  const std::string &pending() const { return buf_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
  ssize_t last_recv_ = 1;
};

// Compresses with zlib: window_bits 31 gzip, 15 zlib, -15 raw deflate.
inline std::string compress(std::string_view in, int window_bits) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef *>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline size_t count_fds() {
  size_t n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr)
    ++n;
  closedir(d);
  return n;
}

// kB from /proc/self/status, e.g. "VmHWM".
inline long proc_status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t klen = strlen(key);
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = atol(line + klen + 1);
  }
  fclose(f);
  return v;
}

}  // namespace ingestd::http::test
