// A vector of trivially copyable values that keeps up to N of them inside itself.
//
// A Model holds a few small vectors per tensor and operator (a shape, a per-tensor quantisation
// scale and zero point, an operator's inputs and outputs). As std::vectors each was a heap block:
// about 700 per CIFAR-sized graph, and freeing them was a fifth of what building the graph cost
// (bench/README.md, bench_threads.py). Kept inline, only the long ones (per-channel scales) reach
// the heap. The interface is the part of std::vector the code uses.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <vector>

namespace perfsage {

template <typename T, size_t N>
class InlineVec {
  static_assert(std::is_trivially_copyable_v<T>, "InlineVec holds plain values");

 public:
  using value_type = T;
  using size_type = size_t;
  using iterator = T*;
  using const_iterator = const T*;

  InlineVec() = default;
  InlineVec(std::initializer_list<T> values) { assign(values.begin(), values.end()); }
  template <typename It, typename = decltype(*std::declval<It>())>
  InlineVec(It first, It last) {
    assign(first, last);
  }
  InlineVec(size_t n, const T& value) { assign(n, value); }
  InlineVec(const std::vector<T>& values) { assign(values.begin(), values.end()); }  // NOLINT: as a vector
  InlineVec(const InlineVec& other) { assign(other.begin(), other.end()); }
  InlineVec(InlineVec&& other) noexcept { take(other); }
  ~InlineVec() { release(); }

  InlineVec& operator=(const InlineVec& other) {
    if (this != &other) assign(other.begin(), other.end());
    return *this;
  }
  InlineVec& operator=(InlineVec&& other) noexcept {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }
  InlineVec& operator=(const std::vector<T>& values) {
    assign(values.begin(), values.end());
    return *this;
  }
  InlineVec& operator=(std::initializer_list<T> values) {
    assign(values.begin(), values.end());
    return *this;
  }

  template <typename It>
  void assign(It first, It last) {
    const auto n = static_cast<size_t>(std::distance(first, last));
    size_ = 0;
    reserve(n);
    std::copy(first, last, data_);
    size_ = n;
  }
  void assign(size_t n, const T& value) {
    size_ = 0;
    reserve(n);
    std::fill(data_, data_ + n, value);
    size_ = n;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

  void reserve(size_t n) {
    if (n <= capacity_) return;
    T* grown = new T[n];
    if (size_) std::memcpy(grown, data_, size_ * sizeof(T));
    release();
    data_ = grown;
    capacity_ = n;
  }
  void push_back(const T& value) {
    if (size_ == capacity_) {
      const T copy = value;  // `value` may live in this vector
      reserve(std::max<size_t>(2 * capacity_, 4));
      data_[size_++] = copy;
      return;
    }
    data_[size_++] = value;
  }
  T* insert(const T* at, const T& value) {
    const auto i = static_cast<size_t>(at - data_);
    const T copy = value;  // `value` may live in this vector
    if (size_ == capacity_) reserve(std::max<size_t>(2 * capacity_, 4));
    std::memmove(data_ + i + 1, data_ + i, (size_ - i) * sizeof(T));
    data_[i] = copy;
    ++size_;
    return data_ + i;
  }
  T* erase(const T* at) {
    const auto i = static_cast<size_t>(at - data_);
    std::memmove(data_ + i, data_ + i + 1, (size_ - i - 1) * sizeof(T));
    --size_;
    return data_ + i;
  }
  void resize(size_t n, const T& value = T()) {
    reserve(n);
    if (n > size_) std::fill(data_ + size_, data_ + n, value);
    size_ = n;
  }
  void clear() { size_ = 0; }

  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  friend bool operator==(const InlineVec& a, const InlineVec& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const InlineVec& a, const InlineVec& b) { return !(a == b); }
  friend bool operator==(const InlineVec& a, const std::vector<T>& b) {
    return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator==(const std::vector<T>& a, const InlineVec& b) { return b == a; }

 private:
  bool on_heap() const { return data_ != inline_; }
  void release() {
    if (on_heap()) delete[] data_;
    data_ = inline_;
    capacity_ = N;
  }
  // Takes other's values (its heap block, or a copy of its inline ones) and leaves it empty.
  void take(InlineVec& other) noexcept {
    if (other.on_heap()) {
      data_ = other.data_;
      capacity_ = other.capacity_;
      other.data_ = other.inline_;
      other.capacity_ = N;
    } else {
      data_ = inline_;
      capacity_ = N;
      std::memcpy(inline_, other.inline_, other.size_ * sizeof(T));
    }
    size_ = other.size_;
    other.size_ = 0;
  }

  T inline_[N] = {};
  T* data_ = inline_;
  size_t size_ = 0;
  size_t capacity_ = N;
};

}  // namespace perfsage
