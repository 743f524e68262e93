// Detects faces and their Action Units in photographs through hrm.hpp; prints what
// examples/c/detect.c prints.
//
//   cmake -S examples/cpp -B build -DCMAKE_PREFIX_PATH=/path/to/hrm/prefix && cmake --build build
//   build/hrm_detect configs/cpu.toml ../shared/images/multi_face.jpg
#include <hrm.hpp>

#include <cstdio>
#include <iostream>

int main(int argc, char **argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " CONFIG.toml PHOTO...\n";
        return 2;
    }
    if (!hrm::abi_matches()) {
        std::cerr << "libhrm " << hrm::version() << " has another ABI than this program was built for\n";
        return 1;
    }
    try {
        hrm::Runtime runtime = hrm::Runtime::from_file(argv[1]);
        hrm::Detector detector(runtime);
        int failures = 0;
        for (int i = 2; i < argc; i++) {
            try {
                hrm::Bitmap photo(argv[i]);
                hrm::Result result = detector.detect(photo.image());
                std::printf("%s: %zu faces\n", argv[i], result.size());
                size_t index = 0;
                for (const hrm::Face &face : result.faces()) {
                    std::printf("face %zu score %.4f bbox %.2f %.2f %.2f %.2f keypoints", index++, face.score,
                                face.bbox[0], face.bbox[1], face.bbox[2], face.bbox[3]);
                    for (const auto &point : face.keypoints) std::printf(" %.2f %.2f", point[0], point[1]);
                    std::printf("\n");
                    for (size_t a = 0; a < face.probabilities.size(); a++) {
                        std::printf("  %-5s %.9g%s\n", face.au_ids[a], face.probabilities[a],
                                    face.present[a] ? " present" : "");
                    }
                }
            } catch (const hrm::Error &e) {
                std::cerr << argv[i] << ": " << e.what() << " (" << hrm_status_str(e.status()) << ")\n";
                failures++;
            }
        }
        if (failures > 0) {
            std::cerr << failures << " of " << argc - 2 << " photographs failed\n";
            return 1;
        }
    } catch (const hrm::Error &e) {
        std::cerr << e.what() << " (" << hrm_status_str(e.status()) << ")\n";
        return 1;
    }
    return 0;
}
