"""Downloads the public MedSeg files (pinned GitHub commits) into a data folder.

    python -m covseg_jax.data.fetch --dest DIR [--what labels,lungmasked,png]

'labels' is the original MedSeg tr_mask.nii.gz, 'lungmasked' the authors' lung-masked
512x512 PNG inputs (adnan_lungmasked_png/), 'png' the 8-bit tr_im_png export. Every
file is checked against the SHA-256 below and written atomically; files already
present with the right hash are skipped. The folder then also gets paper_split.json
and the derived NIfTI files (lung mask = lung-masked PNG > 0; the aligned 8-bit
images) with tr_mask's affine and header.

The original float images tr_im.nii.gz (151.8 MB, too large for GitHub) and the
left/right lung masks tr_lungmasks_updated.nii.gz are not on GitHub: download them by
hand from https://medicalsegmentation.com/covid19/ into the same folder if wanted
(`load_medseg` uses them when present).
"""
import argparse
import hashlib
import http.client
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request
import uuid

import numpy as np

from covseg_jax.data import medseg
from covseg_jax.data import nifti
from covseg_jax.data import splits
from covseg_jax.errors import InputError

GROUPS = ('labels', 'lungmasked', 'png')
NUM_SLICES = 100
_RAW_GITHUB = 'https://raw.githubusercontent.com'
# Where each destination file or folder comes from: repository/commit/path.
_SOURCES = {
    medseg.LABELS_FILE: ('adnan-saood/COVID19-DL/b3d9acbb54fb8728c4b6d967bf5cf810874af4fe/'
                         'dataset/raw/tr_mask.nii.gz'),
    medseg.LUNGMASKED_PNG_DIR: ('adnan-saood/covid-19/d5debd353cd08ad27a052c5941634d67a40e0b2b/'
                                'segnet_matlab/dataset/im/512'),
    medseg.IMAGE_PNG_DIR: ('diyadinesh19/covid19-severity-scoring/'
                           '97be7ce7df2ba3279930a2f87161487ad3a15598/attachments'),
}
_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20

# SHA-256 of each fetched file, by file name (names are unique across the folders).
_SHA256_TABLE = """
bcd1713830998cb31497a1fa189b367230942d8b85df3cdcb9be5e85c86679e4 tr_mask.nii.gz
4c3cfe9c5b2a31bcdbbc88d2228af0c2810a2caedbbca7aa9b63dc6f78ad69e5 i001.png
28cfd973c94cfa0139a3e262516b80bb068b88b58552250853b414b4f98d7504 i002.png
3790e1d293dbc140053e7bd2ea8911ae7c27c190c0aa15e9907197d10c611fc0 i003.png
31d86189cf714020519b356d8ca8b8f43f6b21b1a76448ff19918c28ef0907f0 i004.png
2d727e3d790b5950d819f857b0a7b02d825876e1905321446c54a6147fdbb66f i005.png
6c8b78f8bada320888576bbfa132fbdf02b1577c1929fd6f39d3f9bc94c267ba i006.png
2e8ed2ec216bf0d3a0ced3df91fb8b9347de62131d3dfe6be11d6880ea42a8f0 i007.png
e91a62d1b702150d16c8db885943df37acf8b34a987cf3ce8a2dff067e20d425 i008.png
ac199acef74648869f8a1c239a477f07147a4eb7bfb373182924bf527481211b i009.png
af8e05076da1ea2f8ee7a7fa3a740b84998eadca0cef3efcc6b717aa6b23e3ba i010.png
65a4de20a1faadb18d04866a368c4f43932eca6be4cda1bc1bf2c6625236f443 i011.png
9e9408ae82401b5abdd8fde1a0c4968223d19533de849ef705b1642313b4068f i012.png
ad82a109362567d4ba5f9785848f478317ef55228ad8394b19546068fa098845 i013.png
827155fcb9e4c7230e98bc73603f6caab6f309ae3cf21b99d215a59ccc49e406 i014.png
dc93eed0684404202be72b8074898b5c61f1b2d964a42000290301aeae18defa i015.png
5275021ddabfffcf484cf90843a45673217287e90dc736cbc5420b666f3692e6 i016.png
bba65f4b30ba52fd2a4e860f38602b77a2d226e4d5dacf774f6a9ded73def62c i017.png
38ba1a99ac495b52666a9569c6e1286d0f48ea2dc602709fa5a1171ecc822d2f i018.png
5f9d45423827bb3c8de83c5c32fcb46b47478235781906d3f2666143a86113de i019.png
0974ac0488e9a196ce4be0ea38f44d2936edd1b64c56c29ce5b8dfc98b1f0e35 i020.png
51f90a1acc40079fc4b1860eb6212daaaaceb806bf57c14f9f56e49769a6019e i021.png
ff54d8dd972af127f63f59fad7609400dda45659b7291e50a0a4d0634ee8b440 i022.png
bd88e269de33ad0c57b2905a1ed15faa542cd5842377e1c3453ffea1716b180c i023.png
c35793f06ccad22a9bcc8755cbcc647d98b77e54babe70aabfb539e5c4308f74 i024.png
aadc8d36881e118b65033df79b3b33b17833f8dc901ea4475f805af79b5793d5 i025.png
e42c1ff31f4445c3424aa3fc985e98b782aef1ad74ffcb76096b9a6bca542252 i026.png
f72f17b31e79b30c6a8ed1ad6b8bdb53cdf763d691bc66d43593befd6a6caeec i027.png
5265aa6db32c70ec199dbacb41e68474552d962a89cab32095e4f4744e282200 i028.png
96b38da84594aa874ae2719e97df9015b35dfa5d92709126efc9ca492df67606 i029.png
1e9ad4d07471e5b8fce7abd5fafd20aa4debf8b8d8949b5d700f59d18d5b7f91 i030.png
587d18fe5ab4b5446c4c9d89609dce3912b681487026aadd04b3e2d057662ad4 i031.png
7c12836064f14454e25924e59f22d4982b58a90cec91c850943892e47b4a1206 i032.png
614c5d97b11f4612b0714b0241bfe8f0549b570cdb0a906ea0b79547898a9a59 i033.png
23ca2b2bffe4f3a126dc4526244c2e04854417ab93023c01e4983a6b86523cec i034.png
4d132eb21513dc6a706a28983629330dba6e1705c7241e944d3c260d4cedf388 i035.png
1f3775c08e0eec25aed7af14cd5d6ee95c30bbde96e710fc00a24d476b6371d4 i036.png
865c82fd1700ed8b4621df4e743fe29c0134e7f5d64dd57b6bf3bb138416ba9f i037.png
7684dbdc1351af13cef40d5fb7fdac37efb561252938febfa69937e70a250526 i038.png
8e100a89114bf6a0cf6b93983c1be8ed22ab6bf52b65d1642064ebc558da4715 i039.png
b6dba4ac297964f588a2c24ecf6f8a9cef29c2652eda807d2e91148695bc9ae1 i040.png
58a4d62fbf01f27c1bf3bd806693a611a73138d44d833102a9baf61e40e93b71 i041.png
aafc844b2a21e6bf58de151bfc1daad9fca0f460d67bacdf16eccdde0c10e4a6 i042.png
8752a55c0e9607c9ed5e6f5599e24fca73f3834a82e796533989cb026c8cb0f7 i043.png
1f006a20d08c514d313982528cad544d6b9b823948f00355c48ab5645f6a2826 i044.png
70ba2a9d2195c1922465cd5dae8b05bec06e75b2ee9572b0b3c0772e0cd61a03 i045.png
44754c87ed22caf310e20ee6c381da7bbb19b83efe55d53385c094646563a522 i046.png
63f150757a5083147d6b996eff390d36ab9fbb52bc0a699abf87a94d21804cbe i047.png
a4f6bf4da5b8c33e2eeded24439c90627ff7c1bac1c6b7bb5d842c22c225c937 i048.png
a0ed0d0b810e497125588aa85fe3bc9717bba14d89ab11d21eb2acebf2ed7024 i049.png
9b402d1b2cd5f4ecb846e8827506ba7051cf16724184a542ffdccc4406b26528 i050.png
fbc440f0d7785e2304f8ba1ecbee5ff56c979a87575a2c7b77b58d2b120a0dc2 i051.png
1304fdfde70afd528534cc34da430fcd89a1bc90cc981c8a8b48922942089aae i052.png
65f166e07959d2f3f2b629f4ed4ad6b030c7af5303ecb87120ccd9c368897172 i053.png
dd37b1007b6b6300fa7a5c6b8efcc1787afbe851ffebfe596dcbf4935b01f972 i054.png
203e066705599862de279aa84e991cf9098b93a9cd7b26b7867f61780b0a7e24 i055.png
17b5463ec3abed7685084c87cc6df7e95945b952b3aa001698514c38849f1bb8 i056.png
72a3bd4ee6f716d14a0a9129ef7c47c3d68ee9d1d3e2b631e830a7d8b7a1e9bc i057.png
7bbc9c886541081793091d42927b10a31039b3236ff0b81145f6476373db7b26 i058.png
472978751d7edeeacfbb32d6f3bf2ef0e4960c4669d9df7b1041d2e48f0f29fc i059.png
41cd30b62c6fa952f0841c388c842758537c58577d87d6e05877f99279bba4d9 i060.png
0ef022975a41dc786901e49e061d0de5c2d559b6d85d8864e2290f6dfe47491a i061.png
350c6b478920cf9b5e1e6acddca63c4c8e4a7428cc8bdb94dddcb39cbabce4e0 i062.png
04f5c81d33e0323e61f8b77dd3e10955afe5786f6cdce9966cb47d88b3195d81 i063.png
62ac2faaec2b05bf4addc3091d16fed6e46ed313f2257050b2a849a9d37f25a9 i064.png
d919ac8ebf7af9dde0dd0c1aa1e4fd2f4cc4d920ea7d389bd60dc85a2709f7e9 i065.png
cd0a4b43870f64c9e2d0b7ea475ca664c704e3cbe9d52182c9146d6c9cf56db1 i066.png
e5413a5d7182f16f5eeed709e4b60efaa98777850a0c641f13ca91522755316b i067.png
a77b4b4ce1dd2ff3f4e82e55d228318246a8cd3269f5417bb1ec1fc83057505a i068.png
21dca5ce4766ae232c643ee2b1807d8635b1c7284cea9fcd8cd06a9ee33c8520 i069.png
7bd3a4223fd32de2e0445a18f0ba5c3a115cb306a8b9606e4e1d6c1c613db131 i070.png
53093afcfda9ab1f20d1bd10fed77e7fd33fbc94f8c8723ef2aad5fd701e7877 i071.png
29886247110a28e9bf1d87a9770e50fc1e5e6e2b33f4c98a8b7ee45cee7e42c6 i072.png
9207a9d415c252e28c02ffbb76fd49a1489f38fb503cd938a7e6f4696b30a3fb i073.png
15347048717b7aec2a53f406444b80ff799015907ee69750d147004533c2aa96 i074.png
289c9a6c422f6ffb7b5aabde469c1324ec284843146670e14fac9d5e6d840b60 i075.png
b099fbce454fd60c5f2d4170eb25832f0504689986320cfefde266a7441f9b03 i076.png
0dd58d3e1de164f6bd69a8aab25cb491b29282d2702938c3e6eb828192a141cf i077.png
0d7596057e83977c2765ee0aa03fdde63815ac4230a9058ec02b058e945e59bc i078.png
d91a11092a0c5a9db108ed582b3c23f1d013381176fb7ef04c36925247905bfd i079.png
21eb5f8ad6c53bf4bee03ce5b55d3cd45eaf975335eca5f347107eef09dc827b i080.png
1b63205820d9e4d99df97c2af58e6568824c9a3d8061c3b11dcc3c234d81c9bd i081.png
5cf07fc90bb040e98ab71d8a8d31587153ba4846778ff2e91119f5cb794e86ae i082.png
0f8451364f4da45464502fd43d9f1435928e5aeb1d985c172eb9026fdbb2e0d5 i083.png
c5d492e6295e52a8615febcd9ea3df874a61ad27ea7a1a35526f7d37b97a398b i084.png
3f7fe42f36614abebe42bbbb7e98d9268ab8c25fa0ca1013159bb55a43dfb5d0 i085.png
c8d104b8888fe9948f0e31f5ba80cedae38d7fb25c46f5764e1b3d8319916fef i086.png
3a4d4832661f5cf10e93e5d8befcf81582d03bd83c2b9840bdc9916db40ae915 i087.png
bc68a4c70187cc97fed11fe6cfc78938b48f67597f0bf89865bebe4c8590fda1 i088.png
50e968a4cefd350f57483b257dc2f8aa45f492f486dc125f8c998852f972c79e i089.png
db73873f5331157aac7037a383af4f17e37913411c8324d53ea2be9d15478362 i090.png
37cbb883b5f733af13b1a6ece3a1dfaa6823dec309da459f783dc4f5aa7b1323 i091.png
fb75537fa922272ce4c7f0125ebe55b3d8486f2428adf3d5bffadebf84ffc86a i092.png
025ea31d796cc6e06ab4befacf1dd2c415ab8df58b8691f38f62b83f875ddcd9 i093.png
4f031697a57071f6e14bce9adb89082c57d07aae7d5dc5cd9e1a1e82bda8dab4 i094.png
964c4bf0fd538fe924f183569e1670c5202045383a51a1197d9a55c7c5439cfa i095.png
9ddc1f86eafce600e32e5b5d864d8fb1c95c496471b27d225c30a7996eaa885f i096.png
d7bda561716d1b7e4173969f4ca99d5839ac61c68c15bb6f23efd37dbb96f4e4 i097.png
e109c82a0a99f5f3a35e9513f14cfe99d2c12adc0573209e73d7265c897365a8 i098.png
f16838d9431d5519e22f2e5c2455af9c37e9a1b91382b32e767e6b73c970ae0b i099.png
68c10c79b402ffa25e124f90088504140157bb6252979714501b9abb7c3876a3 i100.png
4f58fbd8e6beee24208d3fddad3cec9f719a668ccd173f317241dc4a58b6802c tr_im_z001.png
a1ec3b16de3bd3d95a8bac217ad831ba0d1d948ed2a0c85f5c292224c6134768 tr_im_z002.png
3417bcf49b4b4d91b01ef316a21fc3e6a1748cfa4123ae4adacb4e6783db168b tr_im_z003.png
e84e64cf59e96d796a7d201e8e4713dd08dcc3e4f41fc424d3fcdcdf508c03ab tr_im_z004.png
562c8c209f8e1948ca7546b6f94430ce46fbcd4985ee082a2c313f8bc4d810d1 tr_im_z005.png
6f38d09f9bcf1633f46ce6edbc25802159b01139efc45de561caa97f21f89987 tr_im_z006.png
5ea3c427311deef9a54f15706a855be80d11ff31d55be88217f988d200a1abca tr_im_z007.png
3ae05edd2243c65f24c768b0b4e6f1f5db5c883746fa1a6d2440ac7c6b8b8540 tr_im_z008.png
79b0f58bc1010f15424a578b7a784f21f097b01c55be4a84a2ff3d38a31ae2bb tr_im_z009.png
4cb3677c79406303ea87aecb15f453e1be04f74a30fed6ed21ec567b2bae1e8d tr_im_z010.png
207a8b22c8ce768e375ac7dff8ea18586d7a5aa02117e60650f46c916314c43e tr_im_z011.png
f8f53765ec6771b3815f13d673529849a53ef57bcc2fbf3bf9f8559502d73246 tr_im_z012.png
db480dd6e47bd8e19055403098e24f211b31dc31cdfecacdf32eab5ebbfba86c tr_im_z013.png
87bb9df65964865846cd8bb405738320c8596490a8a826c3622a104d3347a418 tr_im_z014.png
ce9a8cef82b9be319a789d48029c69ae85c0f29f9840611a5c32f57e28198208 tr_im_z015.png
7b95921d8a1430bdb0aca3711df48990aae23c2d5725d2179b74fded33fa2e27 tr_im_z016.png
0902faeed4004aa112340f551dad102c8539abf5aa5687af347d94bfc5f1d8a2 tr_im_z017.png
fde6514009bdeae1a9263e5e4c28ecda503dbaf4c9fa4161c37e31e646ffcf85 tr_im_z018.png
afec28d3d22c99809bb4dc29dc318e6df2a6784d07d61ab65045511d812aca44 tr_im_z019.png
972c725d4ca84755701202b8d3dd51ae111fd21ff587d6a7a585f78054a1de84 tr_im_z020.png
e4aecf58ac19d2eea92c56b9229572db5f7e6833d1a79f2258434e241cc81c93 tr_im_z021.png
17834db252cb2a5cb0580f90126b2144aee000d1763250674253c7f725b2742e tr_im_z022.png
40022137d7c0a9541d90dadf5a8cddba62c78292f5b0fb957ebe61554bbf56f7 tr_im_z023.png
2528b991b839625a2ecd5811177a0d4e8bf601491e70839504fa4d1e37f2f421 tr_im_z024.png
bda0350db10e6727c5666d7d185aac54333ff6ec3ed8a7bfceb2010f21a8d241 tr_im_z025.png
7546a178b3ff6246d6e45bb914578b49a13d3e80523f8df3283cc4e9a20a84a8 tr_im_z026.png
4aa104a7658dcfad5a9293d69aa3e0570f62eb119addacce443bdcb16724c83d tr_im_z027.png
3a37036b2dd43e80fe4ca26346fae6808cc2f5460b02023d8549c06447412520 tr_im_z028.png
9cdd34fd06f86cc8bfcc2298ded3588e1efd62cd7f45aa33fd6036ad4790805f tr_im_z029.png
092d98a31126a2ec425c13ee90334e048dc2764fdd1ddbd51f9d949f1194580c tr_im_z030.png
89767e6d02dcdc9109ba6d737391aa0ce5a198d032695147606dee4bdc540a4e tr_im_z031.png
82b125e7bd9b8d66fd976f9550ce390bcf382c4e84c20753f4427c7eaf675cb7 tr_im_z032.png
4dbf9f7bcf11714da0d7538ac28d5a31b16d342ebd5e37063bba7a4d7717ca8a tr_im_z033.png
651dbcd1fb2eb528ed6d7253fc4c6ea9700093991f0608875da4d0e242ddbbb9 tr_im_z034.png
cad3940052af4da6425b04b4f756a33ec88b98231a11b1b4a7c9a7f45ce383a0 tr_im_z035.png
d247f5a8103f9a220c362071ff3df3bfa472fce4cde2d6fb4df62fddb5a3c5f4 tr_im_z036.png
1af1b5bbcacb42ce124ea7946e946274c9d908a6ea3e22027fd3db5dde763a93 tr_im_z037.png
8e26540660ebd48b95c737b83bf95d4c42585932da67f8732b82576becf1fc5f tr_im_z038.png
1114c4032c6658a4c13bef7c9dca3e2786192e2106eb45153d4f5ba58efcb2d1 tr_im_z039.png
17161348553d70b76e7508ab5ccdb031bf160f835d367e3c4017103bbe498e9f tr_im_z040.png
b3d50c76c6d0dfc520e1ee6a9142f0db4c1dbef32259f913a3a2c300bc89f37b tr_im_z041.png
6e72b0668f6d20f1c872728ef39950fa0e54265f3667e872001dd2c5e1c3beb7 tr_im_z042.png
ee5beb485914827f7e77936d54a389b73c47435fd37570924722368cce7ea76c tr_im_z043.png
f7128c192c6c9a90d42c2ebce9231f697b1698cb18f015471fa4fc6d052cb2ff tr_im_z044.png
cfe3d627ffcb25305f5d5f414633c78edf529e60d56d2fa4f1410e39a53a36d4 tr_im_z045.png
226dd40ebac1893389a9b0f919eb6efa813c3e031dbd56b3b19bbc82a858fedb tr_im_z046.png
1b5a0eeb27acad53735dd2baff84c21962d652ed53a3f7d07704a7855b841dc6 tr_im_z047.png
7329003c9723636016a817701597a8d45bb4c171dbb05df51960576a3b02c950 tr_im_z048.png
3f5695fd129a5fcdc19ca43561500e69821e6ef24ab04fe9a0b5b44669b296e3 tr_im_z049.png
38787dbd8d509501fc1953955ee542cdf6b6d5218a382e5133bc61469bfc8c3e tr_im_z050.png
808fbb6230973d26f465474b4a05b1695a82ca5c6767d440e3227cad5d26a379 tr_im_z051.png
49fab55589a1a6786707354510e8cdc80c93e327203488eac30660169d8ca77f tr_im_z052.png
16d3b290a52f52eec3d0fe554c2be248d034ed2ff6e21f62c27221b286aefa10 tr_im_z053.png
17fe3ed840eeeddde0958cae112227904056d4c6eb6c2e846728c7db64f27c15 tr_im_z054.png
960cb3def8aa2145fee82ba4d21daed13b5d35472ea1a155ca4d7b8e1b7678cf tr_im_z055.png
861da8f01f5068c4968c95d6095e62214821197ccfb3d5082254190bd6164880 tr_im_z056.png
7ea0fbe555bcdff4ef1ed531d49c89009f3d65a4b35231e51e593bcafb433589 tr_im_z057.png
01b7a5af4b5051f63b3adc8c692ace2f09b794118ca26e56e6733de46ba710e1 tr_im_z058.png
450901e99cd8567651d688a21a4a8a6955e52dc04e3c58278e85fed248f874d0 tr_im_z059.png
b1a6bdd5587b553d15e5f0f694ecc33ddcaa06d92697e5c7248410fe64657698 tr_im_z060.png
0742c07f68e13ae12507282d8a8dee98dd3efa71c56a1eea8df6c16b4d8f0e73 tr_im_z061.png
719f29081867c10d64aed785c4fc832940391518ccd2b0e0046787c359c6673e tr_im_z062.png
8cd7d4c2b86c52d5746184c35cb28c26c8bec0d6f33ff949ea063ed4dc46e578 tr_im_z063.png
2909c9d9715a7bf72a1ca75c5129489195373b9a1c57715ed63dee3dc665ea00 tr_im_z064.png
9e7ab485e88d6f5284beb4b700493b15b6da6e8d2c9f2d60617c2790797ff743 tr_im_z065.png
0384edadc167d7b5b8f76520047d7f9ff6cb8f1f08ecded29c70a296d792b6c2 tr_im_z066.png
cf5ba5a9735ea7a0f4c9f52091d0e82b58f3f886e969e262c1fa09e70e287954 tr_im_z067.png
29364fcca6df455e22d58f2f30a1c1a761b5be6da5557c7cad5c9f6866c79778 tr_im_z068.png
a25102dcae5c666fd5370e07bf2e772211a8e14859d1583431705b19601fb8e0 tr_im_z069.png
7c66714e7a914b5e54c583e623e6c5fea406f5ab856f9914d21ea4fd0e86f252 tr_im_z070.png
1cbd8c64f1801e355f6938e1d96463a8a91756221fa5363b04f2d78392845d2d tr_im_z071.png
6e0cd87d35dc143ce3293281fc5e2e20da0e4779b1f1fc1494507c3fcde64c2e tr_im_z072.png
feb6dd0b6d998c52e11b2c9e2aef1919bc526676c3af3c490ec8704519ee3158 tr_im_z073.png
1fe1d08efe48addcb3cad129ef8b2b89e506ef24817eef9730b40c48d8dcf6d3 tr_im_z074.png
6b710e71e9ee1436ef1086a26bcf694c6fac783b7d43ce03389d66ee77c0bad6 tr_im_z075.png
eb394985926e74f21353b8cd4bcf0c465e0f4e2ecd72f40bb883c4e14693fe43 tr_im_z076.png
1e2e96e9aa3cce71653b843b6476c7c580477064deaae975ca2997706f1a1ba1 tr_im_z077.png
006e83e6fa165a9202b61e5aa5092977832166e1a70573052d4398a8e5de239f tr_im_z078.png
1712d5595926da9460d498562bca89d84d8dabfbea38f79a380c2305f5771e5a tr_im_z079.png
98f0b8472ef16b52eeff47a2212993f7a2836641d651472706bbc7f80348b8e6 tr_im_z080.png
03b8e59217a99b8483b2cd3fa06ca3a0f94085820e9ebedcb8f1bb86d1dea2cb tr_im_z081.png
47fd074e8c6a3c101ce74a9bfde98134b78b7cd035d1ddfae576a5f4bc751d46 tr_im_z082.png
9ac47661e77955e20e4786cefdda33139d71f894fc24b083579b849ce57df1c9 tr_im_z083.png
6d6232336731e3b8b7c4ff916d52ae0247d6745cc73c761798c204c2f709e9bc tr_im_z084.png
ea8b95a9fc313d128cd85cbfb2bb1e0af94faf49c09cfa34976ff24bc23fc06d tr_im_z085.png
c2c1fb8046ba5a4f5697e545d08066d29a2e8da137c2ca977606b2eee19ea76a tr_im_z086.png
f3ac0dcb63b88ec57aa5b6c0711c0262f747392e9b91edf73c35f4233964225e tr_im_z087.png
ca39f600601f51c5ddac30504c299c30b4ddfc799b3c751c8623718c26b963a8 tr_im_z088.png
80dcf8d744f50caa7b31dbffaaa86298c06844f9b1ba659d1b3901fbf907a5ef tr_im_z089.png
3bf01de48707898900f6f6ef5ec9abe946ac5c5b6e1ccba63ec5f653d1c834c4 tr_im_z090.png
505f025ca74da9f4eeceef954be511000cb3d1a6452709148d75382c2f8dc8ce tr_im_z091.png
a5302d239c59fbf1c7eedc7e95d0ffbc4a9132598542bb57b99e297f99ae68d6 tr_im_z092.png
6c65b21fb780975b5e8f756c0884b5124e69f31b401d93b6d38fb0506b542467 tr_im_z093.png
4d183022c88213eeb7320950bfc2bd66d2f243b0fcf4cc6a3f1952138c923268 tr_im_z094.png
eb2819630ad76b690884e6060af12ea0f6ed3bb0f53264d714d780f76ef684b6 tr_im_z095.png
a74b7ecc31d9111a16b78b9ea90d78434b43efc76847bf818ea2076398db2a4c tr_im_z096.png
b4eca6316ac5798b6203e373a33cc2567d37defe59a7d5ed937ccddcf577c83c tr_im_z097.png
79b68255429201170b16398a0f6a346ba0a2f963e40e02ff20886d9a15d62d7b tr_im_z098.png
f25ec8a58ad04a50ef176866d69ee6bc7c6dfdc018ac319a22f8846821b9fe65 tr_im_z099.png
5c078d62d923a4f8389a4588e211f739849f03dbb8e00421c975fb204990d7c3 tr_im_z100.png
"""
SHA256 = {name: digest for digest, name in
          (line.split() for line in _SHA256_TABLE.strip().splitlines())}


def files_in(group):
  """Destination paths (relative to the data folder) of a group's files."""
  if group == 'labels':
    return [medseg.LABELS_FILE]
  if group == 'lungmasked':
    return [medseg.lungmasked_png_name(k) for k in range(1, NUM_SLICES + 1)]
  if group == 'png':
    return [medseg.image_png_name(k) for k in range(1, NUM_SLICES + 1)]
  raise ValueError(f'unknown group {group!r}; expected one of {GROUPS}')


def github_url(relative_path):
  """The pinned raw GitHub URL of a destination path."""
  folder, _, name = relative_path.rpartition('/')
  if folder:
    return f'{_RAW_GITHUB}/{_SOURCES[folder]}/{name}'
  return f'{_RAW_GITHUB}/{_SOURCES[relative_path]}'


def _sha256_of_file(path):
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(_CHUNK_BYTES):
      digest.update(chunk)
  return digest.hexdigest()


def download_verified(url, path, sha256):
  """Downloads `url` to `path` unless it is already there with this SHA-256.

  The download goes to a temporary file beside `path` and replaces it only once
  its hash matches.

  Returns:
    True if the file was downloaded, False if it was already there.
  """
  path = pathlib.Path(path)
  if path.is_file() and _sha256_of_file(path) == sha256:
    return False
  tmp_path = path.with_name(f'.{uuid.uuid4().hex}.{path.name}.part')
  digest = hashlib.sha256()
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response,
          open(tmp_path, 'wb') as out):
      while chunk := response.read(_CHUNK_BYTES):
        digest.update(chunk)
        out.write(chunk)
    if digest.hexdigest() != sha256:
      raise InputError(f'{url}: SHA-256 {digest.hexdigest()} is not the expected {sha256}; '
                       'not saved')
    os.replace(tmp_path, path)
  except urllib.error.URLError as e:
    raise InputError(f'{url}: download failed ({e.reason})') from None
  except (OSError, http.client.HTTPException) as e:  # Timeouts, dropped connections, disk.
    raise InputError(f'{url}: download to {path} failed ({e!r})') from None
  finally:
    tmp_path.unlink(missing_ok=True)
  return True


def _write_text_atomically(text, path):
  tmp_path = path.with_name(f'.{uuid.uuid4().hex}.{path.name}')
  try:
    tmp_path.write_text(text)
    os.replace(tmp_path, path)
  except OSError as e:
    raise InputError(f'{path}: cannot write ({e.strerror or e})') from None
  finally:
    tmp_path.unlink(missing_ok=True)


def write_derived(dest):
  """Writes paper_split.json and the derived NIfTI files whose inputs are in `dest`.

  Returns:
    The paths written.
  """
  dest = pathlib.Path(dest)
  dest.mkdir(parents=True, exist_ok=True)
  written = [dest / splits.PAPER_SPLIT_FILE]
  _write_text_atomically(json.dumps(splits.paper_split_json(), indent=1) + '\n', written[0])
  if not (dest / medseg.LABELS_FILE).is_file():
    return written
  _, reference = nifti.load_nifti(dest / medseg.LABELS_FILE)
  shape = reference.shape[:3]
  for group, align, output in (('lungmasked', False, medseg.DERIVED_LUNG_FILE),
                               ('png', True, medseg.DERIVED_IMAGES_FILE)):
    names = files_in(group)[:shape[2]]
    if all((dest / name).is_file() for name in names):
      slices = medseg.read_png_slices(dest, names, shape, align=align)
      volume = (slices > 0) if group == 'lungmasked' else slices
      written.append(nifti.save_nifti(np.moveaxis(volume, 0, 2), reference, dest / output,
                                      np.uint8, overwrite=True))
  return written


def fetch(dest, what=GROUPS, url_for=github_url):
  """Downloads the groups `what` into `dest`, then writes the derived files.

  Args:
    dest: the data folder (created if needed).
    what: groups among GROUPS.
    url_for: maps a destination path to its URL (tests point it at file:// URLs).

  Returns:
    The paths downloaded (files already present with the right hash are skipped).
  """
  dest = pathlib.Path(dest)
  downloaded = []
  for group in what:
    names = files_in(group)
    fresh = []
    for name in names:
      sha256 = SHA256[pathlib.PurePath(name).name]
      if download_verified(url_for(name), dest / name, sha256):
        fresh.append(dest / name)
    print(f'{group}: {len(fresh)} downloaded, {len(names) - len(fresh)} already present')
    downloaded += fresh
  for path in write_derived(dest):
    print(f'wrote {path}')
  return downloaded


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m covseg_jax.data.fetch',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--dest', required=True, help='data folder to fill')
  parser.add_argument('--what', default=','.join(GROUPS),
                      help=f'comma-separated groups among {",".join(GROUPS)}')
  args = parser.parse_args(argv)
  what = [group for group in args.what.split(',') if group]
  unknown = sorted(set(what) - set(GROUPS))
  if unknown:
    parser.error(f'unknown group(s) {",".join(unknown)}; expected among {",".join(GROUPS)}')
  try:
    fetch(args.dest, what)
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
