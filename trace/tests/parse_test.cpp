// The trace language: malformed input gets `FILE:LINE: message` and nothing runs; printing a
// parsed trace and parsing it again gives the same trace; no input crashes the parser.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "ref/hypervisor.h"
#include "trace/runner.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_in(const char* dir, const char* ext) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ext) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The line a malformed file names in its `# expect-line: N` comment or .expect sibling.
int expected_line(const fs::path& p) {
    fs::path sib = p;
    sib.replace_extension(".expect");
    if (fs::exists(sib)) return std::stoi(read(sib));
    std::smatch m;
    const std::string text = read(p);
    static const std::regex re("expect-line: *([0-9]+)");
    if (std::regex_search(text, m, re)) return std::stoi(m[1]);
    return -1;
}

trace::ParseError must_fail(std::string_view text) {
    auto r = trace::parse("t.trace", text);
    REQUIRE(std::holds_alternative<trace::ParseError>(r));
    return std::get<trace::ParseError>(r);
}

}  // namespace

TEST_CASE("malformed corpus: each file is rejected at its stated line") {
    const auto files = files_in(PVIOMMU_MALFORMED_DIR, ".trace");
    CHECK(files.size() >= 30);
    for (const auto& f : files) {
        CAPTURE(f);
        const int line = expected_line(f);
        REQUIRE(line > 0);
        auto r = trace::parse_file(f.string());
        REQUIRE(std::holds_alternative<trace::ParseError>(r));
        const auto& e = std::get<trace::ParseError>(r);
        CHECK(e.line == line);
        CHECK(e.text().rfind(f.string() + ":" + std::to_string(line) + ": ", 0) == 0);
        CHECK_FALSE(e.message.empty());
    }
}

TEST_CASE("malformed: the TRACE-FORMAT list, one by one") {
    struct Case {
        const char* text;
        int line;
        const char* says;
    };
    const Case cases[] = {
        {"host\nfrobnicate 1\n", 2, "unknown keyword"},
        {"domain 1 guest\nhost\n", 2, "host must come before"},
        {"domain 1 guest\nop query_caps\n", 2, "op outside batch"},
        {"domain 1 guest\nbatch 1\nop query_caps\n", 2, "batch without end"},
        {"domain 1 guest\nbatch 1\ncall 1 query_caps\nend\n", 3, "inside batch"},
        {"domain 1 guest\nbatch 1\nop query_caps\nend\nexpect status=0\n", 5, "needs op=I"},
        {"domain 1 guest\nbatch 1\nop query_caps\nend\nexpect op=1 status=0\n", 5, "out of range"},
        {"domain 1 guest\ncall 1 query_caps\nexpect status=-EWHAT\n", 3, "unknown error name"},
        {"domain 1 guest\ncall 2 query_caps\n", 2, "domain 2 does not exist"},
        {"domain 1 guest\ndestroy 1\nballoon 1 gfn=0\n", 3, "domain 1 does not exist"},
        {"domain 1 guest\ndomain 1 guest\n", 2, "already exists"},
        {"domain 1 guest\ndrain 1 id=0\n", 2, "ioreq server 1 id=0 does not exist"},
        {"host frames=16\ncheck frame mfn=16\n", 2, "does not exist"},
        {"domain 1 guest\ncall 1 map_page bfn=18446744073709551616\n", 2, "does not fit 64 bits"},
        {"domain 1 guest\ncall 1 map_foreign_page domid=65536\n", 2, "does not fit 16 bits"},
        {"domain 1 guest\ncall 1 map_page bfn=\n", 2, "empty value"},
        {"domain 1 guest\ncall 1 map_page pfn=1\n", 2, "unknown field"},
        {"domain 1 guest\ncall 1 map_page flags=rwx\n", 2, "bad flags"},
        {"domain 1 guest\ncall 1 map_page\nexpect status=0 bfn=1\n", 3, "no out bfn"},
        {"domain 1 guest\ncall 1 7 bfn=1\n", 2, "only flags="},
        {"domain 1 guest\ncheck frame mfn=1 colour=red\n", 2, "unknown argument"},
        {"domain 1 guest\ncall 1 query_caps\nrmrr 1 bfn=0 count=1\n", 3, "before the first call"},
        {"expect status=0\n", 1, "before any call"},
        {"domain 0x7ff0 guest\n", 1, "above 0x7fef"},
        {"domain 1 hardware\ndomain 2 hardware\n", 2, "hardware domain"},
        {"domain 1 guest\nioserver 1 id=0 emulator=1 ring=512\n", 2, "511"},
        {"host frames=16777217\n", 1, "D6"},
        {"domain 1 guest ram=2\nxen_gfn 1 gfn=1\n", 2, "already has a frame"},
        {"domain 1 guest\nrmrr 1 bfn=0 count=0\n", 2, "D16"},
        {"domain 1 guest\nrmrr 1 bfn=0xffffffffffffffff count=2\n", 2, "D16"},
        {"domain 1 guest\nballoon 1 gfn=1 gfn=2\n", 2, "duplicate argument"},
        {"domain 1 guest\ncall 1 map_page bfn=0x1g\n", 2, "not a number"},
        {"host\n\x00\n", 2, "NUL"},
        {"host\ndomain 1 guest # caf\xc3\n", 2, "UTF-8"},
        {"host\nend\n", 2, "end without batch"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const auto e =
            must_fail(std::string_view(c.text, std::char_traits<char>::length(c.text) +
                                                   (std::string_view(c.says) == "NUL" ? 2 : 0)));
        CHECK(e.line == c.line);
        CHECK(e.message.find(c.says) != std::string::npos);
    }
}

TEST_CASE("valid: comments, hex and leading-zero decimals, UTF-8 in comments, CRLF") {
    auto r = trace::parse("ok.trace",
                          "# café\r\nhost frames=0x100\r\ndomain 007 guest ram=010 # ram is ten\n"
                          "\tcall 7 query_caps\nexpect status=0 flags=0 order=0\n");
    REQUIRE(std::holds_alternative<trace::Trace>(r));
    const auto& t = std::get<trace::Trace>(r);
    CHECK(t.host.frames == 256);
    CHECK(std::get<trace::DomainStmt>(t.statements.at(0).stmt).ram == 10);
    CHECK(std::get<trace::DomainStmt>(t.statements.at(0).stmt).d == spec::DomId{7});
}

TEST_CASE("print(parse(x)) parses back to the same trace, for every example") {
    for (const auto& f : files_in(PVIOMMU_EXAMPLES_DIR, ".trace")) {
        CAPTURE(f);
        auto r1 = trace::parse_file(f.string());
        REQUIRE(std::holds_alternative<trace::Trace>(r1));
        const std::string once = trace::print(std::get<trace::Trace>(r1));
        auto r2 = trace::parse("printed", once);
        if (auto* e = std::get_if<trace::ParseError>(&r2)) FAIL(e->text());
        CHECK(trace::print(std::get<trace::Trace>(r2)) == once);
    }
}

TEST_CASE("every example holds on ref, with every invariant after every statement (D15)") {
    const auto files = files_in(PVIOMMU_EXAMPLES_DIR, ".trace");
    CHECK(files.size() >= 15);
    for (const auto& f : files) {
        CAPTURE(f);
        auto r = trace::parse_file(f.string());
        REQUIRE(std::holds_alternative<trace::Trace>(r));
        const auto& t = std::get<trace::Trace>(r);
        auto h = ref::make(t.host);
        std::ostringstream out;
        const auto sum = trace::run(t, *h, {}, out);
        CHECK_MESSAGE(sum.exit_code() == 0, out.str());
        CHECK(sum.passed > 0);
    }
}

TEST_CASE("junk never crashes the parser: seeded random bytes and mutated examples") {
    std::mt19937_64 rng(7);  // seeded: reproducible
    const auto files = files_in(PVIOMMU_EXAMPLES_DIR, ".trace");
    int rejected = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string text;
        if (i % 2 == 0 || files.empty()) {
            text.resize(rng() % 200);
            for (char& ch : text) ch = static_cast<char>(rng());
        } else {
            text = read(files[rng() % files.size()]);
            for (int k = 0; k < 4 && !text.empty(); ++k)
                text[rng() % text.size()] = static_cast<char>(rng());
        }
        auto r = trace::parse("junk", text);
        if (auto* e = std::get_if<trace::ParseError>(&r)) {
            ++rejected;
            CHECK(e->line >= 1);
        }
    }
    CHECK(rejected > 1500);
}

TEST_CASE("messages: did you mean, for keywords, subops, error names, fields and checks") {
    struct Case {
        const char* text;
        const char* says;
    };
    const Case cases[] = {
        {"domain 1 guest\nchek frame mfn=1\n", "unknown keyword 'chek' (did you mean 'check'?)"},
        {"domain 1 guest\ncall 1 map_pages\n", "(did you mean 'map_page'?)"},
        {"domain 1 guest\ncall 1 mapforeignpage\n", "(did you mean 'map_foreign_page'?)"},
        {"domain 1 guest\ncall 1 query_caps\nexpect status=EEXIST\n", "(did you mean '-EEXIST'?)"},
        {"domain 1 guest\ncall 1 query_caps\nexpect status=-eexist\n", "(did you mean '-EEXIST'?)"},
        {"domain 1 guest\ncall 1 map_page gnf=1\n", "(did you mean 'gfn'?)"},
        {"domain 1 guest\ncheck frame mfn=1 cuont=1\n", "(did you mean 'count'?)"},
        {"domain 1 guest\ncheck fram mfn=1\n", "(did you mean 'frame'?)"},
        {"host mode=strikt\n", "(did you mean 'strict'?)"},
        {"domain 1 gest\n", "(did you mean 'guest'?)"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const auto e = must_fail(c.text);
        CHECK(e.message.find(c.says) != std::string::npos);
    }
    // Far from every candidate: no suggestion.
    CHECK(must_fail("host\nfrobnicate 1\n").message.find("did you mean") == std::string::npos);
    CHECK(must_fail("domain 1 guest\ncall 1 query_caps\nexpect status=-EAGAIN\n")
              .message.find("did you mean") == std::string::npos);
}

TEST_CASE("messages: a long word is cut, with its length") {
    const std::string word(5000, 'x');
    const auto e = must_fail("host\n" + word + " 1\n");
    CHECK(e.message.size() < 120);
    CHECK(e.message.find("(5000 characters)") != std::string::npos);
    const auto f = must_fail("domain 1 guest\ncall 1 map_page bfn=" + std::string(300, '7') + "\n");
    CHECK(f.message.size() < 120);
}

TEST_CASE("parse_file: directories, missing and empty files are errors of the whole file") {
    const fs::path dir = fs::temp_directory_path() / "pviommu-parse-file-test";
    fs::create_directories(dir);
    auto err_of = [](const std::string& path) {
        auto r = trace::parse_file(path);
        REQUIRE(std::holds_alternative<trace::ParseError>(r));
        return std::get<trace::ParseError>(r);
    };
    const auto d = err_of(dir.string());
    CHECK(d.line == 0);
    CHECK(d.text() == dir.string() + ": cannot read: Is a directory");
    const auto m = err_of((dir / "missing.trace").string());
    CHECK(m.text() ==
          (dir / "missing.trace").string() + ": cannot read: No such file or directory");
    for (const char* text : {"", "# a comment\n\n   \n"}) {
        const fs::path p = dir / "empty.trace";
        std::ofstream(p, std::ios::binary) << text;
        CHECK(err_of(p.string()).message == "no statements (empty trace)");
    }
    const fs::path host_only = dir / "host.trace";
    std::ofstream(host_only, std::ios::binary) << "host frames=16\n";
    CHECK(std::holds_alternative<trace::Trace>(trace::parse_file(host_only.string())));
    fs::remove_all(dir);
}
