// Feeds WebCamTexture frames to an HrmStream and shows each face's track, AUs and atypicality
// score on screen. Put a configuration (and the model package and YuNet file it names) under
// StreamingAssets/hrm/, e.g. configs/cpu.toml from the hrm repository with an
// `[atypicality] model = "..."` line for the score, and attach this to any GameObject. Frames
// run on the main thread here for brevity; in a real scene run them on a worker thread with its
// own HrmStream (one stream per camera and thread, one shared HrmRuntime).
using System.IO;
using System.Text;
using Hrm;
using UnityEngine;

public class WebCamAuDisplay : MonoBehaviour
{
    [Tooltip("Configuration file under StreamingAssets")]
    public string configuration = "hrm/cpu.toml";

    HrmRuntime runtime;
    HrmStream stream;
    WebCamTexture webcam;
    Color32[] pixels;
    string shown = "starting...";

    void Start()
    {
        try
        {
            runtime = HrmRuntime.FromFile(Path.Combine(Application.streamingAssetsPath, configuration));
            stream = new HrmStream(runtime);
        }
        catch (HrmException e)
        {
            shown = "hrm: " + e.Message;
            enabled = false;
            return;
        }
        webcam = new WebCamTexture(640, 480);
        webcam.Play();
    }

    void Update()
    {
        if (webcam == null || !webcam.didUpdateThisFrame || webcam.width < 16)
            return;
        if (pixels == null || pixels.Length != webcam.width * webcam.height)
            pixels = new Color32[webcam.width * webcam.height];
        webcam.GetPixels32(pixels);
        // Color32[] from a texture is RGBA with the bottom row first; the binding says so to libhrm.
        HrmFace[] faces = stream.Push(pixels, webcam.width, webcam.height, (long)(Time.realtimeSinceStartup * 1e6));
        var text = new StringBuilder();
        text.AppendFormat("{0} face(s)\n", faces.Length);
        foreach (HrmFace face in faces)
        {
            text.AppendFormat("face {0} at {1:F0},{2:F0} ({3:P0})", face.TrackId, face.Box[0], face.Box[1], face.Score);
            // NaN until the track has 15 frames, and without an [atypicality] model.
            if (!float.IsNaN(face.Atypicality))
                text.AppendFormat("  atypicality {0:F2}", face.Atypicality);
            text.Append('\n');
            for (int a = 0; a < face.Probabilities.Length; a++)
                if (face.Present[a])
                    text.AppendFormat("  {0} {1:F2}\n", stream.AuIds[a], face.Probabilities[a]);
        }
        shown = text.ToString();
    }

    void OnGUI()
    {
        GUI.Label(new Rect(10, 10, 420, Screen.height - 20), shown);
    }

    void OnDestroy()
    {
        if (webcam != null) webcam.Stop();
        stream?.Dispose();
        runtime?.Dispose();
    }
}
