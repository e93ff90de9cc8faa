// Config loader: files (main, conf.d, includes) -> TOML -> sections checked
// against their option tables -> cross-references (routes, listeners).
#include "config/config.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

namespace ingestd::config {

std::string Error::str() const {
  return pos.str() + ": " + message;
}

namespace {

const Section *find_section(const std::vector<Section> &sections, std::string_view name) {
  for (const Section &s : sections) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

const Section *Config::find_listener(std::string_view name) const {
  return find_section(listeners, name);
}
const Section *Config::find_input(std::string_view name) const {
  return find_section(inputs, name);
}
const Section *Config::find_filter(std::string_view name) const {
  return find_section(filters, name);
}
const Section *Config::find_output(std::string_view name) const {
  return find_section(outputs, name);
}

namespace {

// ---- helpers -----------------------------------------------------------------

Position make_pos(const std::string &file, const toml::source_region &src) {
  return Position{file, src.begin.line, src.begin.column};
}

const char *toml_type_name(const toml::node &node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

// What a value of this type must look like, after "must be ".
std::string expected(const ingestd_option_t &row) {
  switch (row.type) {
    case INGESTD_OPT_STRING:
    case INGESTD_OPT_ENUM:
      return "a string";
    case INGESTD_OPT_INT:
      return "an integer";
    case INGESTD_OPT_DOUBLE:
      return "a number";
    case INGESTD_OPT_BOOL:
      return "a boolean (true or false)";
    case INGESTD_OPT_SIZE:
      return "a size like \"1MiB\" or a number of bytes";
    case INGESTD_OPT_DURATION:
      return "a duration like \"10s\"";
    case INGESTD_OPT_STRING_LIST:
      return "an array of strings";
    case INGESTD_OPT_STRING_LIST_LIST:
      return "an array of arrays of strings";
    case INGESTD_OPT_STRING_MAP:
      return "a table of strings";
  }
  return "valid";
}

std::string format_number(double x) {
  if (std::fabs(x) < 1e18 && x == std::floor(x)) {
    return std::to_string(static_cast<int64_t>(x));
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

bool has_range(const ingestd_option_t &row) {
  return row.min <= row.max;
}

std::vector<std::string_view> split_choices(const char *choices) {
  std::vector<std::string_view> out;
  if (choices == nullptr) return out;
  std::string_view s(choices);
  while (true) {
    size_t bar = s.find('|');
    out.push_back(s.substr(0, bar));
    if (bar == std::string_view::npos) break;
    s.remove_prefix(bar + 1);
  }
  return out;
}

// Sorted by where they were written: toml++ keeps keys in name order.
std::vector<std::pair<const toml::key *, const toml::node *>> in_file_order(
    const toml::table &table) {
  std::vector<std::pair<const toml::key *, const toml::node *>> out;
  for (auto &&[key, node] : table)
    out.emplace_back(&key, &node);
  std::stable_sort(out.begin(), out.end(), [](const auto &a, const auto &b) {
    const auto &x = a.first->source().begin;
    const auto &y = b.first->source().begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return out;
}

// The candidate within edit distance 2 closest to `name`, or "".
std::string closest(std::string_view name, const std::vector<std::string_view> &candidates) {
  std::string_view best;
  size_t best_distance = 3;
  for (std::string_view c : candidates) {
    size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return std::string(best);
}

std::string did_you_mean(std::string_view name, const std::vector<std::string_view> &candidates) {
  std::string c = closest(name, candidates);
  return c.empty() ? "" : "; did you mean '" + c + "'?";
}

bool valid_section_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---- one value -----------------------------------------------------------------

// Converts `node` to `row`'s type into *v (value, positions). Appends errors
// positioned in `file`; returns false if there were any.
class Converter {
 public:
  Converter(const ingestd_option_t &row, const std::string &file, std::vector<Error> *errors)
      : row_(row), name_(row.name), file_(file), errors_(errors) {}

  bool convert(const toml::node &node, OptionValue *v) {
    size_t errors_before = errors_->size();
    v->pos = make_pos(file_, node.source());
    switch (row_.type) {
      case INGESTD_OPT_STRING:
      case INGESTD_OPT_ENUM:
        if (const auto *s = node.as_string()) {
          v->str = s->get();
          if (row_.type == INGESTD_OPT_ENUM) check_choice(node, v->str);
        } else {
          wrong_type(node);
        }
        break;
      case INGESTD_OPT_INT:
        if (const auto *i = node.as_integer()) {
          v->i = i->get();
          check_range(node, static_cast<double>(v->i), "");
        } else {
          wrong_type(node);
        }
        break;
      case INGESTD_OPT_DOUBLE:
        if (const auto *i = node.as_integer()) {
          v->d = static_cast<double>(i->get());
        } else if (const auto *d = node.as_floating_point()) {
          v->d = d->get();
        } else {
          wrong_type(node);
          break;
        }
        check_range(node, v->d, "");
        break;
      case INGESTD_OPT_BOOL:
        if (const auto *b = node.as_boolean()) {
          v->b = b->get();
        } else {
          wrong_type(node);
        }
        break;
      case INGESTD_OPT_SIZE:
        convert_size(node, v);
        break;
      case INGESTD_OPT_DURATION:
        convert_duration(node, v);
        break;
      case INGESTD_OPT_STRING_LIST:
        if (const auto *a = node.as_array()) {
          v->list.clear();
          v->item_pos.clear();
          for (size_t k = 0; k < a->size(); ++k) {
            const toml::node &item = *a->get(k);
            v->item_pos.push_back(make_pos(file_, item.source()));
            if (const auto *s = item.as_string()) {
              v->list.push_back(s->get());
            } else {
              bad_item(item, k);
            }
          }
        } else {
          wrong_type(node);
        }
        break;
      case INGESTD_OPT_STRING_LIST_LIST:
        convert_list_list(node, v);
        break;
      case INGESTD_OPT_STRING_MAP:
        if (const auto *t = node.as_table()) {
          v->map.clear();
          v->item_pos.clear();
          for (auto [key, member] : in_file_order(*t)) {
            v->item_pos.push_back(make_pos(file_, member->source()));
            if (const auto *s = member->as_string()) {
              v->map.emplace_back(std::string(key->str()), s->get());
            } else {
              error(*member, "option '" + name_ + "': member '" + std::string(key->str()) +
                                 "' must be a string, got " + toml_type_name(*member));
            }
          }
        } else {
          wrong_type(node);
        }
        break;
      default:
        error(node, "option '" + name_ + "' has an unknown type in its option table");
    }
    bool ok = errors_->size() == errors_before;
    v->has_value = ok;
    return ok;
  }

 private:
  void error(const toml::node &node, std::string message) {
    errors_->push_back(Error{make_pos(file_, node.source()), std::move(message)});
  }

  void wrong_type(const toml::node &node) {
    error(node,
          "option '" + name_ + "' must be " + expected(row_) + ", got " + toml_type_name(node));
  }

  void bad_item(const toml::node &item, size_t k) {
    error(item, "option '" + name_ + "': item " + std::to_string(k + 1) +
                    " must be a string, got " + toml_type_name(item));
  }

  void check_choice(const toml::node &node, const std::string &value) {
    std::vector<std::string_view> choices = split_choices(row_.choices);
    if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
    std::string list;
    for (std::string_view c : choices) {
      if (!list.empty()) list += ", ";
      list += c;
    }
    error(node, name_ + " must be one of: " + list + " (got '" + value + "')");
  }

  void check_range(const toml::node &node, double x, const char *unit) {
    if (!has_range(row_) || (x >= row_.min && x <= row_.max)) return;
    error(node, "option '" + name_ + "' must be between " + format_number(row_.min) + unit +
                    " and " + format_number(row_.max) + unit + ", got " + format_number(x) + unit);
  }

  void convert_size(const toml::node &node, OptionValue *v) {
    if (const auto *i = node.as_integer()) {
      if (i->get() < 0) {
        error(node, "option '" + name_ + "' must not be negative");
        return;
      }
      v->size = static_cast<uint64_t>(i->get());
    } else if (const auto *s = node.as_string()) {
      std::string err;
      if (!parse_size(s->get(), &v->size, &err)) {
        error(node, "option '" + name_ + "': " + err);
        return;
      }
    } else {
      wrong_type(node);
      return;
    }
    check_range(node, static_cast<double>(v->size), " bytes");
  }

  void convert_duration(const toml::node &node, OptionValue *v) {
    if (const auto *i = node.as_integer()) {
      std::string n = std::to_string(i->get());
      error(node, "option '" + name_ + "' needs a unit: write \"" + n + "s\" or \"" + n +
                      "ms\" (units are ms, s, m, h)");
    } else if (const auto *s = node.as_string()) {
      std::string err;
      if (!parse_duration_ms(s->get(), &v->i, &err)) {
        error(node, "option '" + name_ + "': " + err);
        return;
      }
      check_range(node, static_cast<double>(v->i), "ms");
    } else {
      wrong_type(node);
    }
  }

  void convert_list_list(const toml::node &node, OptionValue *v) {
    const auto *a = node.as_array();
    if (a == nullptr) {
      wrong_type(node);
      return;
    }
    v->list_list.clear();
    v->item_pos.clear();
    for (size_t k = 0; k < a->size(); ++k) {
      const toml::node &inner = *a->get(k);
      v->item_pos.push_back(make_pos(file_, inner.source()));
      const auto *ia = inner.as_array();
      if (ia == nullptr) {
        error(inner, "option '" + name_ + "': item " + std::to_string(k + 1) +
                         " must be an array of strings, got " + toml_type_name(inner));
        continue;
      }
      std::vector<std::string> strings;
      for (size_t j = 0; j < ia->size(); ++j) {
        const toml::node &item = *ia->get(j);
        if (const auto *s = item.as_string()) {
          strings.push_back(s->get());
        } else {
          error(item, "option '" + name_ + "': item " + std::to_string(k + 1) + "." +
                          std::to_string(j + 1) + " must be a string, got " + toml_type_name(item));
        }
      }
      v->list_list.push_back(std::move(strings));
    }
  }

  const ingestd_option_t &row_;
  std::string name_;
  const std::string &file_;
  std::vector<Error> *errors_;
};

// Applies row.default_value ("as TOML would spell it"; strings, enums, sizes
// and durations may also be written bare: "info", "1MiB", "10s").
bool apply_default(const ingestd_option_t &row, OptionValue *v, std::string *err) {
  v->has_value = false;
  if (row.default_value == nullptr) return true;
  std::string_view text = row.default_value;
  bool bare_string = (row.type == INGESTD_OPT_STRING || row.type == INGESTD_OPT_ENUM ||
                      row.type == INGESTD_OPT_SIZE || row.type == INGESTD_OPT_DURATION) &&
                     !text.starts_with('"') && !text.starts_with('\'');
  std::vector<Error> errors;
  const std::string file;
  Converter converter(row, file, &errors);
  if (bare_string) {
    converter.convert(toml::value<std::string>(std::string(text)), v);
  } else {
    try {
      toml::table t =
          toml::parse(std::string_view("v = " + std::string(text)), std::string_view("default"));
      converter.convert(*t.get("v"), v);
    } catch (const toml::parse_error &e) {
      Error err;  // built step by step: g++ 12 -O3 misreads Error{{}, ...} as uninitialised
      err.message = std::string(e.description());
      errors.push_back(std::move(err));
    }
  }
  v->pos = {};
  v->item_pos.clear();
  v->explicitly_set = false;
  if (errors.empty()) return true;
  if (err) {
    *err = "option '" + std::string(row.name) + "': invalid default '" + std::string(text) +
           "': " + errors.front().message;
  }
  v->has_value = false;
  return false;
}

// ---- files ---------------------------------------------------------------------

// Reads a whole regular file; on failure *err gets e.g. "No such file or directory".
bool read_file(const std::string &path, std::string *text, std::string *err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = std::generic_category().message(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = S_ISDIR(st.st_mode) ? "Is a directory" : "not a regular file";
    ::close(fd);
    return false;
  }
  text->clear();
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = std::generic_category().message(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    text->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

std::string join_path(const std::string &dir, const std::string &name) {
  if (dir.empty() || (!name.empty() && name.front() == '/')) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string escape_glob(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Identity of a file for "each file once".
std::string file_identity(const std::string &path) {
  char *real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) return std::filesystem::path(path).lexically_normal().string();
  std::string out(real);
  std::free(real);
  return out;
}

// ---- the loader ------------------------------------------------------------------

struct KindInfo {
  const char *section;  // "inputs"
  const char *word;     // "input"
};

KindInfo kind_info(ingestd_kind_type kind) {
  switch (kind) {
    case INGESTD_KIND_INPUT:
      return {"inputs", "input"};
    case INGESTD_KIND_FILTER:
      return {"filters", "filter"};
    case INGESTD_KIND_OUTPUT:
      return {"outputs", "output"};
  }
  return {"?", "?"};
}

std::string with_article(const char *word) {
  return (word[0] == 'i' || word[0] == 'o' ? "an " : "a ") + std::string(word);
}

class Loader {
 public:
  Loader(const PluginLookup &lookup, Config *cfg, std::vector<Error> *errors)
      : lookup_(lookup), cfg_(cfg), errors_(errors) {}

  void run(const std::string &main_file) {
    std::string dir = std::filesystem::path(main_file).parent_path().string();
    queue_file(main_file, Position{});
    list_conf_d(join_path(dir, "conf.d"));
    // The queue grows as files name includes: they are read after conf.d.
    for (size_t i = 0; i < queue_.size(); ++i) {
      Pending p = queue_[i];
      load_file(p);
    }
    if (!service_defined_) {
      toml::table empty;
      apply_options(service_options(), empty, main_file, "[service]", Position{main_file}, false,
                    &cfg_->service);
    }
    check_references();
    sort_errors();
  }

 private:
  struct Pending {
    std::string path;
    Position from;  // the include that named it; empty for main and conf.d
  };

  void error(Position pos, std::string message) {
    errors_->push_back(Error{std::move(pos), std::move(message)});
  }

  void queue_file(const std::string &path, const Position &from) {
    if (!seen_.insert(file_identity(path)).second) return;
    queue_.push_back(Pending{path, from});
    cfg_->files.push_back(path);
  }

  void list_conf_d(const std::string &dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return;
    cfg_->watch_dirs.push_back(dir);
    std::vector<std::string> names;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      std::error_code ec2;
      if (name.size() > 5 && name.ends_with(".toml") && name.front() != '.' &&
          it->is_regular_file(ec2)) {
        names.push_back(name);
      }
    }
    if (ec) {
      error(Position{dir}, "cannot read directory: " + ec.message());
      return;
    }
    std::sort(names.begin(), names.end());
    for (const std::string &name : names)
      queue_file(join_path(dir, name), Position{});
  }

  void load_file(const Pending &p) {
    std::string text, err;
    if (!read_file(p.path, &text, &err)) {
      if (p.from.file.empty()) {
        error(Position{p.path}, "cannot open: " + err);
      } else {
        error(p.from, "include '" + p.path + "': cannot open: " + err);
      }
      return;
    }
    toml::table root;
    try {
      root = toml::parse(std::string_view(text), std::string_view(p.path));
    } catch (const toml::parse_error &e) {
      error(make_pos(p.path, e.source()), std::string(e.description()));
      return;
    }
    const std::string &file = p.path;
    std::string dir = std::filesystem::path(file).parent_path().string();
    for (auto [key, node] : in_file_order(root)) {
      std::string_view k = key->str();
      if (k == "include") {
        add_includes(file, dir, *node);
      } else if (k == "service") {
        load_service(file, *node);
      } else if (k == "listeners") {
        load_sections(file, "listeners", *node, nullptr, &cfg_->listeners);
      } else if (k == "inputs") {
        ingestd_kind_type kind = INGESTD_KIND_INPUT;
        load_sections(file, "inputs", *node, &kind, &cfg_->inputs);
      } else if (k == "filters") {
        ingestd_kind_type kind = INGESTD_KIND_FILTER;
        load_sections(file, "filters", *node, &kind, &cfg_->filters);
      } else if (k == "outputs") {
        ingestd_kind_type kind = INGESTD_KIND_OUTPUT;
        load_sections(file, "outputs", *node, &kind, &cfg_->outputs);
      } else if (k == "routes") {
        load_routes(file, *node);
      } else {
        static constexpr std::string_view kSections[] = {
            "service", "listeners", "inputs", "filters", "outputs", "routes", "include"};
        error(make_pos(file, key->source()),
              "unknown section '" + std::string(k) + "'" +
                  did_you_mean(k, {std::begin(kSections), std::end(kSections)}));
      }
    }
  }

  void add_includes(const std::string &file, const std::string &dir, const toml::node &node) {
    std::vector<const toml::node *> items;
    if (const auto *a = node.as_array()) {
      for (const toml::node &item : *a)
        items.push_back(&item);
    } else {
      items.push_back(&node);
    }
    for (const toml::node *item : items) {
      Position pos = make_pos(file, item->source());
      const auto *s = item->as_string();
      if (s == nullptr) {
        error(pos, std::string("include must be an array of file names or globs, got ") +
                       toml_type_name(*item));
        continue;
      }
      const std::string &pattern = s->get();
      if (pattern.find_first_of("*?[") == std::string::npos) {
        queue_file(join_path(dir, pattern), pos);
        continue;
      }
      std::string full = pattern.front() == '/' ? pattern : join_path(escape_glob(dir), pattern);
      glob_t g{};
      int rc = ::glob(full.c_str(), GLOB_MARK, nullptr, &g);
      std::vector<std::string> matches;
      if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) {
          std::string m = g.gl_pathv[i];
          if (!m.ends_with('/')) matches.push_back(std::move(m));
        }
      } else if (rc != GLOB_NOMATCH) {
        error(pos, "include '" + pattern + "': cannot read the directories it names");
      }
      ::globfree(&g);
      std::sort(matches.begin(), matches.end());
      for (const std::string &m : matches)
        queue_file(m, pos);
    }
  }

  // A section seen twice (in one file or two) is an error at the second place.
  bool define(const std::string &label, const Position &pos) {
    auto [it, inserted] = defined_.emplace(label, pos);
    if (inserted) return true;
    error(pos, label + " already defined at " + it->second.str());
    return false;
  }

  void load_service(const std::string &file, const toml::node &node) {
    const auto *t = node.as_table();
    Position pos = make_pos(file, node.source());
    if (t == nullptr) {
      error(pos, "[service] must be a table");
      return;
    }
    if (!define("[service]", pos)) return;
    service_defined_ = true;
    apply_options(service_options(), *t, file, "[service]", pos, false, &cfg_->service);
    const OptionValue *admin = cfg_->service.find("admin");
    std::string err;
    if (admin && admin->has_value && !admin->str.empty() &&
        !parse_listen_address(admin->str, nullptr, nullptr, &err)) {
      error(admin->explicitly_set ? admin->pos : pos, "option 'admin': " + err);
    }
  }

  // [listeners.*] when kind is null, else [inputs.*], [filters.*], [outputs.*].
  void load_sections(const std::string &file, const char *section, const toml::node &node,
                     const ingestd_kind_type *kind, std::vector<Section> *out) {
    const auto *t = node.as_table();
    if (t == nullptr) {
      error(make_pos(file, node.source()),
            std::string(section) + " must be a table of [" + section + ".NAME] tables");
      return;
    }
    for (auto [key, sub] : in_file_order(*t)) {
      std::string name(key->str());
      std::string label = "[" + std::string(section) + "." + name + "]";
      Position pos = make_pos(file, sub->source());
      const auto *st = sub->as_table();
      if (st == nullptr) {
        error(make_pos(file, key->source()),
              label + " must be a table, got " + toml_type_name(*sub));
        continue;
      }
      if (!valid_section_name(name)) {
        error(make_pos(file, key->source()),
              "section name '" + name + "' may only contain letters, digits, '_' and '-'");
        continue;
      }
      if (!define(label, pos)) continue;
      Section s;
      s.name = name;
      s.pos = pos;
      if (kind == nullptr) {
        apply_options(listener_options(), *st, file, label, pos, false, &s.options);
        check_listener(s, file);
      } else {
        load_plugin_section(file, label, *kind, *st, &s);
      }
      out->push_back(std::move(s));
    }
  }

  void load_plugin_section(const std::string &file, const std::string &label,
                           ingestd_kind_type kind, const toml::table &t, Section *s) {
    std::span<const ingestd_option_t> core = core_options(kind);
    std::vector<ingestd_option_t> merged;
    bool plugin_known = false;
    const toml::node *plugin = t.get("plugin");
    if (plugin != nullptr && plugin->is_string()) {
      s->plugin = plugin->as_string()->get();
      Position ppos = make_pos(file, plugin->source());
      std::string why;
      const ingestd_plugin_t *d = lookup_ ? lookup_(kind, s->plugin, &why) : nullptr;
      KindInfo info = kind_info(kind);
      if (d == nullptr) {
        error(ppos, "unknown " + std::string(info.word) + " plugin '" + s->plugin + "'" +
                        (why.empty() ? "" : ": " + why));
      } else if (d->kind != kind) {
        error(ppos, "plugin '" + s->plugin + "' is " + with_article(kind_info(d->kind).word) +
                        " plugin, not " + with_article(info.word) + " plugin");
      } else {
        std::span<const ingestd_option_t> rows;
        if (d->options != nullptr) rows = {d->options, d->option_count};
        std::string err;
        if (merge_options(core, rows, &merged, &err)) {
          s->descriptor = d;
          plugin_known = true;
        } else {
          error(ppos, "plugin '" + s->plugin + "': " + err);
        }
      }
    }
    if (!plugin_known) merged.assign(core.begin(), core.end());
    // Without the plugin's table its own options cannot be told from typos.
    apply_options(merged, t, file, label, s->pos, !plugin_known, &s->options);
    if (kind == INGESTD_KIND_INPUT) check_input(*s);
    if (kind == INGESTD_KIND_OUTPUT) check_output(*s);
  }

  void check_listener(const Section &s, const std::string &) {
    const OptionValue *listen = s.options.find("listen");
    std::string err;
    if (listen && listen->has_value && !parse_listen_address(listen->str, nullptr, nullptr, &err)) {
      error(listen->pos, "option 'listen': " + err);
    }
    const OptionValue *proxies = s.options.find("trusted_proxies");
    if (proxies && proxies->explicitly_set) {
      for (size_t i = 0; i < proxies->list.size() && i < proxies->item_pos.size(); ++i) {
        if (!parse_cidr(proxies->list[i], &err)) {
          error(proxies->item_pos[i], "option 'trusted_proxies': " + err);
        }
      }
    }
    const OptionValue *body = s.options.find("max_body");
    const OptionValue *inflated = s.options.find("max_body_decompressed");
    if (body && inflated && body->has_value && inflated->has_value && inflated->size < body->size) {
      error(inflated->explicitly_set ? inflated->pos : body->pos,
            "option 'max_body_decompressed' must not be smaller than max_body");
    }
  }

  void check_input(Section &s) {
    for (OptionValue &v : s.options.mutable_values()) {
      if (v.name() == "tag" && !v.has_value) {
        v.str = s.name;
        v.has_value = true;
      }
      if (v.name() == "path" && v.explicitly_set && v.has_value && !v.str.starts_with('/')) {
        error(v.pos, "option 'path' must start with '/', got '" + v.str + "'");
      }
    }
  }

  void check_output(const Section &s) {
    const OptionValue *initial = s.options.find("retry_initial");
    const OptionValue *max = s.options.find("retry_max");
    if (initial && max && initial->has_value && max->has_value && max->i < initial->i) {
      error(max->explicitly_set ? max->pos : initial->pos,
            "option 'retry_max' must not be smaller than retry_initial");
    }
  }

  void load_routes(const std::string &file, const toml::node &node) {
    const auto *a = node.as_array();
    if (a == nullptr || !a->is_array_of_tables()) {
      error(make_pos(file, node.source()), "routes must be an array of tables: write [[routes]]");
      return;
    }
    for (const toml::node &item : *a) {
      const toml::table &t = *item.as_table();
      Route r;
      r.pos = make_pos(file, item.source());
      OptionValues values;
      apply_options(route_options(), t, file, "[[routes]]", r.pos, false, &values);
      r.match = values.get_string("match");
      r.filters = values.get_list("filters");
      r.to = values.get_list("to");
      const OptionValue *to = values.find("to");
      if (to && to->explicitly_set && to->has_value && to->list.empty()) {
        error(to->pos, "option 'to' must name at least one output");
      }
      const OptionValue *match = values.find("match");
      if (match && match->has_value && match->str.empty()) {
        error(match->pos, "option 'match' must not be empty");
      }
      cfg_->routes.push_back(std::move(r));
      route_values_.push_back(std::move(values));
    }
  }

  // Fills *out with every row of `rows` (defaults applied), then the values
  // of `t`. Unknown keys are errors unless `lenient`.
  void apply_options(std::span<const ingestd_option_t> rows, const toml::table &t,
                     const std::string &file, const std::string &label, const Position &header,
                     bool lenient, OptionValues *out) {
    std::vector<OptionValue> &values = out->mutable_values();
    values.clear();
    values.reserve(rows.size());
    std::vector<std::string_view> names;
    for (const ingestd_option_t &row : rows) {
      OptionValue v;
      v.row = row;
      std::string err;
      if (!apply_default(row, &v, &err)) error(header, err);
      values.push_back(std::move(v));
      names.emplace_back(row.name);
    }
    for (auto [key, node] : in_file_order(t)) {
      std::string_view k = key->str();
      auto it = std::find_if(values.begin(), values.end(),
                             [&](const OptionValue &v) { return v.name() == k; });
      if (it == values.end()) {
        if (!lenient) {
          error(make_pos(file, key->source()),
                "unknown option '" + std::string(k) + "' in " + label + did_you_mean(k, names));
        }
        continue;
      }
      OptionValue parsed;
      parsed.row = it->row;
      Converter converter(it->row, file, errors_);
      if (converter.convert(*node, &parsed)) {
        parsed.explicitly_set = true;
        *it = std::move(parsed);
      } else {
        // Keep the default, but remember where the bad value was.
        it->explicitly_set = true;
        it->pos = parsed.pos;
      }
    }
    for (const OptionValue &v : values) {
      if ((v.row.flags & INGESTD_OPT_REQUIRED) && !v.explicitly_set) {
        error(header, "missing required option '" + std::string(v.name()) + "' in " + label);
      }
    }
  }

  void check_references() {
    std::vector<std::string_view> listener_names, filter_names, output_names;
    for (const Section &s : cfg_->listeners)
      listener_names.push_back(s.name);
    for (const Section &s : cfg_->filters)
      filter_names.push_back(s.name);
    for (const Section &s : cfg_->outputs)
      output_names.push_back(s.name);

    std::map<std::pair<std::string, std::string>, const Section *> endpoints;
    for (const Section &s : cfg_->inputs) {
      const OptionValue *listener = s.options.find("listener");
      const OptionValue *path = s.options.find("path");
      if (listener == nullptr || !listener->has_value) continue;
      if (cfg_->find_listener(listener->str) == nullptr) {
        error(listener->pos, "unknown listener '" + listener->str + "'" +
                                 did_you_mean(listener->str, listener_names));
        continue;
      }
      if (path == nullptr || !path->has_value) continue;
      auto [it, inserted] = endpoints.emplace(std::pair(listener->str, path->str), &s);
      if (!inserted) {
        const Section &first = *it->second;
        error(path->pos, "path '" + path->str + "' on listener '" + listener->str +
                             "' is already used by [inputs." + first.name + "] at " +
                             first.options.find("path")->pos.str());
      }
    }

    for (const OptionValues &values : route_values_) {
      const OptionValue *filters = values.find("filters");
      if (filters && filters->explicitly_set) {
        for (size_t i = 0; i < filters->list.size() && i < filters->item_pos.size(); ++i) {
          const std::string &name = filters->list[i];
          if (cfg_->find_filter(name) == nullptr) {
            error(filters->item_pos[i],
                  "route uses unknown filter '" + name + "'" + did_you_mean(name, filter_names));
          }
        }
      }
      const OptionValue *to = values.find("to");
      if (to && to->explicitly_set) {
        for (size_t i = 0; i < to->list.size() && i < to->item_pos.size(); ++i) {
          const std::string &name = to->list[i];
          if (cfg_->find_output(name) == nullptr) {
            error(to->item_pos[i], "route sends to unknown output '" + name + "'" +
                                       did_you_mean(name, output_names));
          }
        }
      }
    }
  }

  // By file in load order, then line and column; a file's own failure first.
  void sort_errors() {
    std::map<std::string, size_t> order;
    for (size_t i = 0; i < cfg_->files.size(); ++i)
      order.emplace(cfg_->files[i], i);
    auto rank = [&](const Error &e) {
      auto it = order.find(e.pos.file);
      return std::tuple(it == order.end() ? SIZE_MAX : it->second, e.pos.line, e.pos.col);
    };
    std::stable_sort(errors_->begin(), errors_->end(),
                     [&](const Error &a, const Error &b) { return rank(a) < rank(b); });
  }

  const PluginLookup &lookup_;
  Config *cfg_;
  std::vector<Error> *errors_;
  std::vector<Pending> queue_;
  std::set<std::string> seen_;
  std::map<std::string, Position> defined_;  // "[outputs.es]" -> where first defined
  bool service_defined_ = false;
  std::vector<OptionValues> route_values_;  // beside cfg_->routes, for positions
};

}  // namespace

bool load(const std::string &main_file, const PluginLookup &lookup, Config *out,
          std::vector<Error> *errors) {
  *out = Config{};
  size_t errors_before = errors->size();
  Loader(lookup, out, errors).run(main_file);
  return errors->size() == errors_before;
}

bool merge_options(std::span<const ingestd_option_t> core, std::span<const ingestd_option_t> plugin,
                   std::vector<ingestd_option_t> *out, std::string *err) {
  out->assign(core.begin(), core.end());
  std::vector<bool> overridden(core.size(), false);
  for (const ingestd_option_t &row : plugin) {
    if (row.name == nullptr || *row.name == '\0') {
      *err = "option table has a row without a name";
      return false;
    }
    auto it = std::find_if(out->begin(), out->end(), [&](const ingestd_option_t &r) {
      return std::string_view(r.name) == row.name;
    });
    if (it == out->end()) {
      out->push_back(row);
      continue;
    }
    size_t index = static_cast<size_t>(it - out->begin());
    if (index >= core.size() || overridden[index]) {
      *err = "option '" + std::string(row.name) + "' is declared twice";
      return false;
    }
    if (it->type != row.type) {
      *err = "option '" + std::string(row.name) + "' has type " + option_type_name(row.type) +
             " in the plugin but " + option_type_name(it->type) + " in the core";
      return false;
    }
    overridden[index] = true;
    if (row.default_value != nullptr) it->default_value = row.default_value;
  }
  return true;
}

std::vector<std::string> check_option_table(std::span<const ingestd_option_t> table,
                                            std::span<const ingestd_option_t> core) {
  std::vector<std::string> problems;
  std::set<std::string_view> names, descriptions;
  for (size_t i = 0; i < table.size(); ++i) {
    const ingestd_option_t &row = table[i];
    std::string where = "row " + std::to_string(i + 1);
    if (row.name == nullptr || *row.name == '\0') {
      problems.push_back(where + ": no name");
      continue;
    }
    where = "option '" + std::string(row.name) + "'";
    if (!names.insert(row.name).second) problems.push_back(where + ": name repeated");
    if (row.type < INGESTD_OPT_STRING || row.type > INGESTD_OPT_STRING_MAP) {
      problems.push_back(where + ": unknown type " + std::to_string(row.type));
      continue;
    }
    if (row.description == nullptr || *row.description == '\0') {
      problems.push_back(where + ": empty description");
    } else if (!descriptions.insert(row.description).second) {
      problems.push_back(where + ": description repeats another row's");
    }
    if (row.type == INGESTD_OPT_ENUM && (row.choices == nullptr || *row.choices == '\0')) {
      problems.push_back(where + ": enum without choices");
      continue;
    }
    if ((row.flags & INGESTD_OPT_REQUIRED) && row.default_value != nullptr) {
      problems.push_back(where + ": required but has a default");
    }
    OptionValue v;
    std::string err;
    if (!apply_default(row, &v, &err)) problems.push_back(err);
  }
  std::vector<ingestd_option_t> merged;
  std::string err;
  if (!core.empty() && !merge_options(core, table, &merged, &err)) problems.push_back(err);
  return problems;
}

}  // namespace ingestd::config
