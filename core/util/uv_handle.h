// RAII owners for libuv handles. A handle's memory may be freed only in or
// after its close callback (libuv docs/src/handle.rst), so the owner closes
// the handle and the close callback deletes it.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <utility>

namespace ingestd {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  explicit UvHandle(T *h) : h_(h) {}
  UvHandle(const UvHandle &) = delete;
  UvHandle &operator=(const UvHandle &) = delete;
  UvHandle(UvHandle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UvHandle &operator=(UvHandle &&o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { reset(); }

  T *get() const { return h_; }
  T *operator->() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

  // Closes the handle; its memory goes in the close callback.
  void reset() {
    if (!h_) return;
    auto *h = reinterpret_cast<uv_handle_t *>(std::exchange(h_, nullptr));
    if (uv_is_closing(h)) return;  // someone else closes it and frees it
    uv_close(h, [](uv_handle_t *p) { delete reinterpret_cast<T *>(p); });
  }

 private:
  T *h_ = nullptr;
};

// A timer with a std::function callback. Movable: the callback lives on the
// heap so the handle's `data` pointer stays valid.
class Timer {
 public:
  Timer() = default;
  explicit Timer(uv_loop_t *loop) { init(loop); }
  void init(uv_loop_t *loop) {
    cb_ = std::make_unique<std::function<void()>>();
    auto *t = new uv_timer_t;
    uv_timer_init(loop, t);
    t->data = cb_.get();
    timer_ = UvHandle<uv_timer_t>(t);
  }
  void start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb) {
    *cb_ = std::move(cb);
    uv_timer_start(timer_.get(), &Timer::on_timer, timeout_ms, repeat_ms);
  }
  void stop() {
    if (timer_) uv_timer_stop(timer_.get());
  }
  bool active() const {
    return timer_ && uv_is_active(reinterpret_cast<const uv_handle_t *>(timer_.get()));
  }
  // A background timer: it fires while the loop runs for other reasons but
  // does not keep uv_run from returning.
  void unref() {
    if (timer_) uv_unref(reinterpret_cast<uv_handle_t *>(timer_.get()));
  }
  // Closing first: after uv_close no callback runs, so the function may go.
  ~Timer() { timer_.reset(); }
  Timer(Timer &&) = default;
  Timer &operator=(Timer &&o) noexcept {
    timer_ = std::move(o.timer_);
    cb_ = std::move(o.cb_);
    return *this;
  }

 private:
  static void on_timer(uv_timer_t *t) {
    auto *cb = static_cast<std::function<void()> *>(t->data);
    if (*cb) (*cb)();
  }
  UvHandle<uv_timer_t> timer_;
  std::unique_ptr<std::function<void()>> cb_;
};

}  // namespace ingestd
