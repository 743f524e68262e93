// Runs the Unity package's Runtime/ code on mono against libhrm.so. Prints what
// examples/c/detect.c prints for each photograph (checked against it by c_abi.rs), detecting
// on managed RGB8 bytes; then checks that the same pixels as bottom-up RGBA (Unity's Color32
// layout) and a failing call behave.
//
//   mono HrmMonoTest.exe CONFIG.toml PHOTO...
using System;
using System.Globalization;
using Hrm;

static class HrmMonoTest
{
    static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        System.Threading.Thread.CurrentThread.CurrentCulture = CultureInfo.InvariantCulture;
        int failures = 0;
        using (var runtime = HrmRuntime.FromFile(args[0]))
        using (var detector = new HrmDetector(runtime))
        {
            if (runtime.Device() != "tract:cpu" || runtime.Device(1) != "tract:cpu")
            {
                Console.Error.WriteLine("runtime.Device(): {0}, {1}; expected tract:cpu", runtime.Device(), runtime.Device(1));
                failures++;
            }
            for (int p = 1; p < args.Length; p++)
            {
                var photo = new HrmBitmap(args[p]);
                var faces = detector.Detect(photo.Pixels, photo.Width, photo.Height, HrmPixelFormat.Rgb8);
                Console.WriteLine("{0}: {1} faces", args[p], faces.Length);
                for (int i = 0; i < faces.Length; i++)
                {
                    var f = faces[i];
                    Console.Write("face {0} score {1:F4} bbox {2:F2} {3:F2} {4:F2} {5:F2} keypoints", i, f.Score, f.Box[0], f.Box[1], f.Box[2], f.Box[3]);
                    foreach (var k in f.Keypoints) Console.Write(" {0:F2}", k);
                    Console.WriteLine();
                    for (int a = 0; a < f.Probabilities.Length; a++)
                        Console.WriteLine("  {0,-5} {1}{2}", detector.AuIds[a], f.Probabilities[a].ToString("R"), f.Present[a] ? " present" : "");
                }

                // The same picture as Unity hands it over: RGBA, bottom row first.
                var rgba = new byte[photo.Width * photo.Height * 4];
                for (int y = 0; y < photo.Height; y++)
                    for (int x = 0; x < photo.Width; x++)
                    {
                        int from = (y * photo.Width + x) * 3, to = ((photo.Height - 1 - y) * photo.Width + x) * 4;
                        rgba[to] = photo.Pixels[from];
                        rgba[to + 1] = photo.Pixels[from + 1];
                        rgba[to + 2] = photo.Pixels[from + 2];
                        rgba[to + 3] = 255;
                    }
                var unityFaces = detector.Detect(rgba, photo.Width, photo.Height, HrmPixelFormat.Rgba8, bottomUp: true);
                bool same = unityFaces.Length == faces.Length;
                for (int i = 0; same && i < faces.Length; i++)
                    for (int a = 0; a < faces[i].Probabilities.Length; a++)
                        same &= unityFaces[i].Probabilities[a] == faces[i].Probabilities[a];
                if (!same)
                {
                    Console.Error.WriteLine("FAIL {0}: bottom-up RGBA gives other AUs", args[p]);
                    failures++;
                }
                foreach (var f in faces)
                    if (f.TrackId != -1 || !float.IsNaN(f.Atypicality))
                    {
                        Console.Error.WriteLine("FAIL {0}: a detector's face has track {1}", args[p], f.TrackId);
                        failures++;
                    }

                // A stream of the photograph twice: each face keeps its track; no [atypicality], no score.
                using (var stream = new HrmStream(runtime))
                {
                    var first = stream.Push(photo.Pixels, photo.Width, photo.Height, HrmPixelFormat.Rgb8, 0);
                    var second = stream.Push(photo.Pixels, photo.Width, photo.Height, HrmPixelFormat.Rgb8, 40000);
                    bool tracked = first.Length == faces.Length && second.Length == faces.Length;
                    for (int i = 0; tracked && i < faces.Length; i++)
                        tracked &= first[i].TrackId >= 0 && first[i].TrackId == second[i].TrackId && float.IsNaN(second[i].Atypicality);
                    stream.Reset();
                    var afterReset = stream.Push(photo.Pixels, photo.Width, photo.Height, HrmPixelFormat.Rgb8, 0);
                    foreach (var f in afterReset) tracked &= f.TrackId >= faces.Length;
                    if (!tracked)
                    {
                        Console.Error.WriteLine("FAIL {0}: stream tracks", args[p]);
                        failures++;
                    }
                }
            }
            try
            {
                detector.Detect(new byte[16], 2, 2, (HrmPixelFormat)9);
                Console.Error.WriteLine("FAIL an unknown pixel format did not throw");
                failures++;
            }
            catch (HrmException e)
            {
                if (e.Status != 1 || !e.Message.Contains("pixel_format"))
                {
                    Console.Error.WriteLine("FAIL unexpected error {0}: {1}", e.Status, e.Message);
                    failures++;
                }
            }
        }
        try
        {
            HrmRuntime.FromFile("/nonexistent/hrm.toml");
            failures++;
        }
        catch (HrmException e)
        {
            if (e.Status != 3 || !e.Message.Contains("/nonexistent/hrm.toml")) failures++;
        }
        if (failures > 0) Console.Error.WriteLine("{0} checks failed", failures);
        return failures == 0 ? 0 : 1;
    }
}
