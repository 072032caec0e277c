// A minimal user of the installed aurora::sqlite component: write one event, reopen, read it back.
#include <aurora/sqlite/storage.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct count_documents {
  std::size_t documents = 0;
  void collection(std::string_view /*name*/) {}
  void document(std::string_view /*collection*/, std::string_view /*id*/, aurora::Document&& /*doc*/) { ++documents; }
};

}  // namespace

int main() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "aurora_sqlite_consumer";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "db.sqlite").string();
  std::string id;
  {
    aurora::sqlite::Storage storage(path);
    id = storage.id();
    auto ev = std::make_shared<aurora::ChangeEvent>();
    ev->collection = "users";
    ev->document_id = "u1";
    ev->document = std::make_shared<const aurora::Document>(aurora::Document{{"name", "Ada"}});
    ev->sequence = 1;
    ev->commit = 1;
    const std::vector<std::shared_ptr<const aurora::ChangeEvent>> events{ev};
    storage.write(events);
  }
  aurora::sqlite::Storage storage(path, aurora::Durability::normal);
  count_documents visitor;
  storage.load(visitor);
  const bool ok = storage.id() == id && storage.last_sequence() == 1 && visitor.documents == 1;
  std::filesystem::remove_all(dir);
  std::puts(ok ? "sqlite_consumer: wrote, reopened and loaded" : "sqlite_consumer: FAILED");
  return ok ? 0 : 1;
}
