#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace bt::model {

/// An optional value kept on the heap, with value semantics (copies copy the value,
/// == compares values): one pointer wide when empty, for what few of many objects
/// have (a job's wait for a message: most jobs never wait).
template <class T>
class boxed {
public:
  boxed() = default;
  boxed(std::nullopt_t) {}
  boxed(T value) : p_{std::make_unique<T>(std::move(value))} {}
  boxed(const boxed& other) : p_{other.p_ ? std::make_unique<T>(*other.p_) : nullptr} {}
  boxed(boxed&&) noexcept = default;
  boxed& operator=(const boxed& other) {
    if (this != &other)
      p_ = other.p_ ? std::make_unique<T>(*other.p_) : nullptr;
    return *this;
  }
  boxed& operator=(boxed&&) noexcept = default;
  boxed& operator=(T value) {
    p_ = std::make_unique<T>(std::move(value));
    return *this;
  }

  explicit operator bool() const { return p_ != nullptr; }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  void reset() { p_.reset(); }

  friend bool operator==(const boxed& a, const boxed& b) {
    return a.p_ == b.p_ || (a.p_ && b.p_ && *a.p_ == *b.p_);
  }

private:
  std::unique_ptr<T> p_;
};

} // namespace bt::model
